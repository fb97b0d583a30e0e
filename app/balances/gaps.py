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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from app.balances import repository
from app.balances.checks import refuse_future
from app.balances.shards import PassResult, Progress, check_range
from app.balances.sources import Answer, BalanceSource, default_source
from app.config import get_settings
from app.db import leases
from app.db.session import SessionScope
from app.models.enums import Severity
from app.observability.events import record_event
from app.observability.metrics import JOB_DURATION_SECONDS, JOB_RUNS

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

    ``end`` is clamped to yesterday in the bank's time zone (``window``). The default
    source is built only once a gap is found. Commits as it goes, one transaction of
    ``scope`` per step (the run row, each batch, the result); the run holds a lease
    while it works and takes over a gap repair whose process died (app/db/leases).
    """
    start, end = window(start, end)
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
        # Any gap repair whose process died is taken over: this one re-finds its gaps.
        leases.take_over_stale(session, JOB, run_id)
    started = time.monotonic()
    own_source = source is None
    src = source if source is not None else _DefaultSource()
    report = GapRepairReport(run_id=run_id)
    heartbeat = leases.Heartbeat(scope, run_id).start()
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
        heartbeat.stop()
        if own_source:
            src.close()
    # Counted from the source's answers: a gap a concurrent run filled meanwhile is
    # neither "filled" here nor "still missing".
    report.still_missing = sum(reasons.values())
    report.still_missing_customer_ids = sorted(missing_ids)
    report.missing_by_reason = dict(reasons)
    _finish(scope, report, run_id, correlation_id, time.monotonic() - started)
    return report


def window(start: date, end: date) -> tuple[date, date]:
    """The repair window: ``end`` clamped to yesterday in the bank's time zone (today's
    end-of-day balance does not exist yet); a start after the end or in the future is
    refused (ValueError, FutureDateError)."""
    if start > end:
        raise ValueError(f"start {start} is after end {end}")
    today = today_local()
    refuse_future(start, today)
    return start, min(end, today - timedelta(days=1))


def has_gaps(scope: SessionScope, start: date, end: date) -> bool:
    """Whether the repair of [start, end] would have anything to ask a source for."""
    first, last = window(start, end)
    if first > last:
        return False
    with scope() as session:
        return repository.has_gaps(session, first, last)


class _DefaultSource:
    """The default balance source, built when the first gap is asked for: a window without
    gaps needs no source at all (a month already complete qualifies without one)."""

    name = "default"

    def __init__(self) -> None:
        self._source: BalanceSource | None = None

    def fetch(self, accounts: Sequence[str], as_of: date) -> Mapping[str, Answer]:
        if self._source is None:
            self._source = default_source()
            self.name = self._source.name
        return self._source.fetch(accounts, as_of)

    def close(self) -> None:
        if self._source is not None:
            self._source.close()


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
    JOB_RUNS.labels(JOB, "finished").inc()


def kick_window(today: date) -> tuple[date, date]:
    """The daily repair's window: the previous month's first day up to yesterday."""
    first_this = today.replace(day=1)
    first_prev = (first_this - timedelta(days=1)).replace(day=1)
    return first_prev, today - timedelta(days=1)
