"""One qualification run of a month, end to end.

This is the use case that the CLI (``premium-notify run qualification``) and the worker
actor (``qualification.run_month``) both call. A run commits several times, so it takes
a ``SessionScope`` (``app.db.session.session_scope`` in production) and opens its own
transactions with it:

1. refuse a month that is not closed in the bank's time zone;
2. record the run (job_runs, committed at once so operators see it Running; it holds a
   lease, renewed while it works, and takes over a dead run of the month: app/db/leases);
3. gap repair for the month (``app.balances.gaps``; its own transactions);
4. re-validate stale phone verdicts, one committed transaction per chunk;
5. in ONE transaction, under the month's advisory lock: (recompute,) decide + insert,
   count, the audited run summary, the Finished run row, events;
6. metrics after the commit. Any failure marks the run Failed and re-raises.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from app.balances import gaps
from app.balances.gaps import GapRepairReport
from app.config import get_settings
from app.db import leases
from app.db.session import SessionScope
from app.models import JobRun
from app.models.enums import DisqualificationReason, Severity
from app.months import Month
from app.observability import metrics
from app.observability.events import record_event
from app.qualification import engine, phones
from app.qualification.months import ensure_closed
from app.qualification.repository import phone_verdicts, runs

log = logging.getLogger(__name__)

# repair(scope, start, end): re-checks the days without a check, in its own transactions.
GapRepair = Callable[[SessionScope, date, date], GapRepairReport]
# progress(step, done, total): the CLI draws a bar; workers pass nothing.
Progress = Callable[[str, int, int | None], None]


def default_gap_repair(scope: SessionScope, start: date, end: date) -> GapRepairReport:
    """The balances stage's gap repair, asking the default balance source."""
    return gaps.repair_gaps(scope, start, end)


@dataclass
class RunResult:
    month: Month
    run_id: uuid.UUID
    correlation_id: uuid.UUID
    written: engine.Tally
    totals: engine.Tally
    recomputed: engine.Tally | None = None
    gap_repair: dict[str, Any] = field(default_factory=dict)
    phones: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "month": str(self.month),
            "written": self.written.as_dict(),
            "recomputed": self.recomputed.as_dict() if self.recomputed else None,
            "totals": self.totals.as_dict(),
            "gap_repair": self.gap_repair,
            "phones": self.phones,
            "seconds": round(self.seconds, 3),
        }


def run_month(
    scope: SessionScope,
    month: Month,
    *,
    gap_repair: GapRepair | None,
    recompute: bool = False,
    triggered_by: str = "cli",
    user_id: str | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Qualify ``month`` in transactions of ``scope``; see the module docstring.

    ``gap_repair`` is ``default_gap_repair`` in production; ``None`` skips that step.
    """
    settings = get_settings()
    ensure_closed(month, settings.tz, now)
    started = time.monotonic()

    with scope() as session:
        run = runs.start_run(session, month, triggered_by=triggered_by, recompute=recompute)
        # A run of the month whose process died (lease expired) is taken over by this one.
        leases.take_over_stale(session, runs.JOB, run.id, run_key=str(month))
        record_event(
            session,
            "qualification.started",
            f"qualification of {month} started",
            service_name=runs.SERVICE,
            correlation_id=run.correlation_id,
            data={"month": str(month), "run_id": str(run.id), "recompute": recompute},
        )
    log.info("qualification %s started (run %s)", month, run.id)
    heartbeat = leases.Heartbeat(scope, run.id).start()
    try:
        gap_stats = _repair_gaps(scope, month, gap_repair, progress)
        phone_stats = _revalidate_phones(
            scope,
            month,
            settings.qualification_phone_chunk,
            settings.default_phone_region,
            progress,
        )
        result = _decide(
            scope,
            month,
            run,
            recompute=recompute,
            user_id=user_id,
            work_mem=settings.qualification_work_mem,
            gap_stats=gap_stats,
            phone_stats=phone_stats,
            started=started,
            progress=progress,
        )
    except Exception as exc:
        _record_failure(scope, month, run.id, run.correlation_id, exc)
        raise
    finally:
        heartbeat.stop()
    _observe(result)
    log.info("qualification %s finished: %s", month, result.totals.as_dict())
    return result


def _repair_gaps(
    scope: SessionScope, month: Month, repair: GapRepair | None, progress: Progress | None
) -> dict[str, Any]:
    if repair is None:
        return {"skipped": True}
    if progress:
        progress("gap repair", 0, 1)
    report = repair(scope, month.first, month.last)
    if progress:
        progress("gap repair", 1, 1)
    # Counts only: the report's customer ids stay out of the run's stats.
    return {
        "gaps_found": report.gaps_found,
        "filled": report.filled,
        "still_missing": report.still_missing,
    }


def _revalidate_phones(
    scope: SessionScope, month: Month, chunk: int, region: str, progress: Progress | None
) -> dict[str, Any]:
    with scope() as session:
        stale = phone_verdicts.count_stale(session, month)
    by_status: Counter[str] = Counter()
    done = updated = 0
    after = phones.FIRST_ID
    if progress:
        progress("phone re-validation", 0, stale)
    while stale:
        with scope() as session:
            part = phones.revalidate_chunk(session, month, after=after, limit=chunk, region=region)
        if part.last_id is None:
            break
        after = part.last_id
        done += part.rows
        updated += part.updated
        by_status.update(part.by_status)
        if progress:
            progress("phone re-validation", done, stale)
    for status, n in by_status.items():
        metrics.PHONES_REVALIDATED.labels(status=status).inc(n)
    return {"revalidated": updated, "by_status": dict(by_status)}


def _decide(
    scope: SessionScope,
    month: Month,
    run: JobRun,
    *,
    recompute: bool,
    user_id: str | None,
    work_mem: str | None,
    gap_stats: dict[str, Any],
    phone_stats: dict[str, Any],
    started: float,
    progress: Progress | None,
) -> RunResult:
    if progress:
        progress("qualification", 0, 1)
    with scope() as session:
        engine.prepare_transaction(
            session, month, run.correlation_id, user_id=user_id, work_mem=work_mem
        )
        recomputed = (
            engine.recompute_month(session, month, run.correlation_id) if recompute else None
        )
        written = engine.insert_month(session, month, run.correlation_id)
        totals = engine.month_totals(session, month)
        result = RunResult(
            month,
            run.id,
            run.correlation_id,
            written,
            totals,
            recomputed,
            gap_stats,
            phone_stats,
            time.monotonic() - started,
        )
        stats = result.stats()
        runs.audit_summary(
            session,
            run,
            {"correlation_id": str(run.correlation_id), "run_id": str(run.id), **stats},
            user_id=user_id,
        )
        missing = totals.reasons[DisqualificationReason.MISSING_DATA]
        if missing:
            record_event(
                session,
                "qualification.missing_data",
                f"{missing} customers of {month} have days without a balance check",
                severity=Severity.WARNING,
                service_name=runs.SERVICE,
                correlation_id=run.correlation_id,
                data={
                    "month": str(month),
                    "missing_data_customers": missing,
                    "gap_repair": gap_stats,
                },
            )
        record_event(
            session,
            "qualification.finished",
            f"qualification of {month} finished",
            service_name=runs.SERVICE,
            correlation_id=run.correlation_id,
            data={
                "month": str(month),
                "run_id": str(run.id),
                "totals": totals.as_dict(),
                "written": written.as_dict(),
            },
        )
        runs.finish_run(session, run.id, stats)
    if progress:
        progress("qualification", 1, 1)
    return result


def _record_failure(
    scope: SessionScope, month: Month, run_id: uuid.UUID, correlation_id: uuid.UUID, exc: Exception
) -> None:
    # The class and first line only: driver errors can carry row values in later lines.
    first_line = (str(exc).splitlines() or [""])[0][:300]
    error = f"{type(exc).__name__}: {first_line}"
    metrics.JOB_RUNS.labels(pn_job=runs.JOB, outcome="failed").inc()
    try:
        with scope() as session:
            runs.fail_run(session, run_id, error)
            record_event(
                session,
                "qualification.failed",
                f"qualification of {month} failed",
                severity=Severity.ERROR,
                service_name=runs.SERVICE,
                correlation_id=correlation_id,
                data={"month": str(month), "run_id": str(run_id), "error": type(exc).__name__},
            )
    except Exception:  # the original error matters more than the bookkeeping one
        log.exception("could not record the failure of qualification run %s", run_id)


def _observe(result: RunResult) -> None:
    metrics.QUALIFIED.inc(result.written.qualified)
    for reason, n in result.written.reasons.items():
        if n:
            metrics.DISQUALIFIED.labels(reason=reason).inc(n)
    metrics.MISSING_DATA_CUSTOMERS.set(result.totals.reasons[DisqualificationReason.MISSING_DATA])
    metrics.JOB_RUNS.labels(pn_job=runs.JOB, outcome="finished").inc()
    metrics.JOB_DURATION_SECONDS.labels(pn_job=runs.JOB).observe(result.seconds)
