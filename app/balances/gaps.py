"""Gap repair: (active customer, day) pairs without a check are re-checked as of that day.

Qualification needs a check for every calendar day (docs/design.md decision 4), so before a
month is qualified, and every morning for the current and previous month, the days a
customer has no check for (the source could not answer, a worker or the scheduler was
down, the customer was added late) are asked for again, as of that date. Nothing is
invented: an account the source still cannot answer for stays missing and is reported.

Each (day, batch) is its own transaction, so a long repair commits as it goes and a
crash loses at most one batch: ``repair_gaps`` takes a ``SessionScope``
(``app.db.session.session_scope`` in production). The repair is recorded as a
``gap_repair`` job run.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from app.balances import repository
from app.balances.checks import refuse_future
from app.balances.shards import PassResult, Progress, check_range
from app.balances.sources import BalanceSource, default_source
from app.config import get_settings
from app.db.session import SessionScope
from app.models.enums import Severity
from app.observability.events import record_event
from app.observability.metrics import JOB_DURATION_SECONDS, JOB_LAST_SUCCESS, JOB_RUNS

JOB = "gap_repair"


@dataclass
class GapRepairReport:
    """What a repair found and did (the qualification run records its three counts)."""

    gaps_found: int = 0
    filled: int = 0
    still_missing: int = 0
    still_missing_customer_ids: list[uuid.UUID] = field(default_factory=list)
    missing_by_reason: dict[str, int] = field(default_factory=dict)
    run_id: uuid.UUID | None = None


def today_local() -> date:
    return datetime.now(get_settings().tz).date()


def repair_gaps(
    scope: SessionScope,
    start: date,
    end: date,
    *,
    source: BalanceSource | None = None,
    progress: Progress | None = None,
    triggered_by: str = "gap_repair",
) -> GapRepairReport:
    """Find and re-check every (active customer, day) in [start, end] without a check.

    ``end`` is clamped to yesterday in the bank's time zone: today's end-of-day balance
    does not exist yet (the daily run writes it after end of business). Commits as it
    goes, one transaction of ``scope`` per step (the run row, each batch, the result).
    """
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    today = today_local()
    refuse_future(start, today)
    end = min(end, today - timedelta(days=1))
    settings = get_settings()
    threshold = settings.qualification_threshold
    with scope() as session:
        run = repository.insert_run(
            session,
            job=JOB,
            run_key=f"{start.isoformat()}..{end.isoformat()}",
            triggered_by=triggered_by,
            stats={"threshold": str(threshold)},
        )
        run_id, correlation_id = run.id, run.correlation_id
    started = time.monotonic()
    own_source = source is None
    src = source if source is not None else default_source()
    report = GapRepairReport(run_id=run_id)
    reasons: Counter[str] = Counter()
    missing_ids: set[uuid.UUID] = set()
    try:
        day = start
        while day <= end:
            result: PassResult = check_range(
                scope,
                day,
                repository.FULL_RANGE,
                src,
                threshold=threshold,
                correlation_id=correlation_id,
                batch_size=settings.balance_batch_size,
                progress=progress,
                keep_missing_ids=True,
            )
            report.gaps_found += result.seen
            report.filled += result.inserted
            reasons.update(result.missing_by_reason)
            missing_ids.update(result.missing_ids)
            day += timedelta(days=1)
    except Exception as exc:
        with scope() as session:
            repository.mark_run_failed(session, run_id, f"{type(exc).__name__}: {exc}")
        JOB_RUNS.labels(JOB, "failed").inc()
        raise
    finally:
        if own_source:
            src.close()
    # Counted from the source's answers: a gap a concurrent run filled meanwhile is
    # neither "filled" here nor "still missing".
    report.still_missing = sum(reasons.values())
    report.still_missing_customer_ids = sorted(missing_ids)
    report.missing_by_reason = dict(reasons)
    _finish(scope, report, run_id, correlation_id, time.monotonic() - started)
    return report


def _finish(
    scope: SessionScope,
    report: GapRepairReport,
    run_id: uuid.UUID,
    correlation_id: uuid.UUID,
    duration: float,
) -> None:
    stats = {
        "gaps_found": report.gaps_found,
        "filled": report.filled,
        "still_missing": report.still_missing,
        "missing_customers": len(report.still_missing_customer_ids),
        "missing_by_reason": report.missing_by_reason,
    }
    with scope() as session:
        run = repository.mark_run_finished(session, run_id, stats)
        record_event(
            session,
            "gap_repair.finished",
            f"gap repair {run.run_key}: {report.gaps_found} gaps, {report.filled} filled, "
            f"{report.still_missing} still missing",
            severity=Severity.WARNING if report.still_missing else Severity.INFO,
            data={"run_id": str(run.id), **stats},
            correlation_id=correlation_id,
        )
    JOB_DURATION_SECONDS.labels(JOB).observe(duration)
    JOB_LAST_SUCCESS.labels(JOB).set(time.time())
    JOB_RUNS.labels(JOB, "finished").inc()


def kick_window(today: date) -> tuple[date, date]:
    """The daily repair's window: the previous month's first day up to yesterday."""
    first_this = today.replace(day=1)
    first_prev = (first_this - timedelta(days=1)).replace(day=1)
    return first_prev, today - timedelta(days=1)
