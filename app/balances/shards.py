"""One shard of a day's run: stream its active customers in batches, fetch, write.

Each batch is its own short transaction, and no database connection is held while the
source is called (a slow core-banking API must not pin the pool). A batch only ever
asks for customers that have no check on the day yet, so a shard that is redelivered,
re-run, or restarted after its worker was killed picks up exactly where the committed
work ends and never writes a day twice (the UNIQUE key would refuse it anyway).
That is why these services commit several times: they take a ``SessionScope``
(``app.db.session.session_scope`` in production) and open one transaction per step.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.balances import repository, runs
from app.balances.checks import CheckRow, evaluate
from app.balances.repository import IdRange
from app.balances.sources import BalanceSource, Missing, MissingReason, source_from_spec
from app.config import get_settings
from app.db import leases
from app.db.audit import set_audit_context
from app.db.session import SessionScope
from app.observability.metrics import BALANCE_CHECKS, BALANCE_MISSING

log = logging.getLogger(__name__)

# Reasons that mean "the source answered, but with something unusable".
REJECT_REASONS = frozenset(
    {MissingReason.INVALID_BALANCE, MissingReason.WRONG_CURRENCY, MissingReason.WRONG_DATE}
)

Progress = Callable[[int], None]
SourceFactory = Callable[[str | None], BalanceSource]


@dataclass
class PassResult:
    """What one pass over a set of customers did."""

    seen: int = 0
    inserted: int = 0
    missing_by_reason: Counter[str] = field(default_factory=Counter)
    missing_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(n for r, n in self.missing_by_reason.items() if r in REJECT_REASONS)


def set_correlation(session: Session, correlation_id: uuid.UUID) -> None:
    # The audit trigger falls back to this for rows without their own correlation id.
    set_audit_context(session, correlation_id)


def check_batch(
    scope: SessionScope,
    customers: list[tuple[uuid.UUID, str]],
    day: date,
    source: BalanceSource,
    *,
    threshold: Decimal,
    correlation_id: uuid.UUID,
    result: PassResult,
    keep_missing_ids: bool = False,
) -> None:
    """Fetch and write one batch (the write is one transaction of ``scope``)."""
    max_stale = get_settings().balance_max_stale_days
    answers = source.fetch([acc for _, acc in customers], day)
    rows: list[CheckRow] = []
    for customer_id, account in customers:
        answer = answers.get(account) or Missing(account, MissingReason.NOT_FOUND)
        verdict = evaluate(customer_id, answer, day, threshold, max_stale)
        if isinstance(verdict, Missing):
            result.missing_by_reason[str(verdict.reason)] += 1
            BALANCE_MISSING.labels(source.name, str(verdict.reason)).inc()
            if keep_missing_ids:
                result.missing_ids.append(customer_id)
        else:
            rows.append(verdict)
    with scope() as session:
        set_correlation(session, correlation_id)
        inserted = repository.write_checks(session, rows, correlation_id)
    result.seen += len(customers)
    result.inserted += inserted
    _count_written(rows)


def _count_written(rows: list[CheckRow]) -> None:
    passed = sum(1 for r in rows if r.passes and not r.flag)
    if passed:
        BALANCE_CHECKS.labels("pass", "none").inc(passed)
    for r in rows:
        if r.flag or not r.passes:
            flag = r.flag.split(":", 1)[0].split(";", 1)[0] if r.flag else "none"
            BALANCE_CHECKS.labels("pass" if r.passes else "fail", flag).inc()


def check_range(
    scope: SessionScope,
    day: date,
    id_range: IdRange,
    source: BalanceSource,
    *,
    threshold: Decimal,
    correlation_id: uuid.UUID,
    batch_size: int,
    progress: Progress | None = None,
    keep_missing_ids: bool = False,
) -> PassResult:
    """Check every active, not yet checked customer of ``id_range`` on ``day``.

    Each batch is read in one transaction of ``scope`` and written in another; none is
    open while the source is asked.
    """
    result = PassResult()
    after: uuid.UUID | None = None
    while True:
        with scope() as session:
            batch = repository.unchecked_customers(session, day, id_range, after, batch_size)
        if not batch:
            return result
        after = batch[-1][0]
        check_batch(
            scope,
            batch,
            day,
            source,
            threshold=threshold,
            correlation_id=correlation_id,
            result=result,
            keep_missing_ids=keep_missing_ids,
        )
        if progress is not None:
            progress(len(batch))


@dataclass(frozen=True, slots=True)
class ShardOutcome:
    ran: bool  # False: the shard had already finished (redelivery)
    finished_run: bool  # this shard was the last one and closed the run
    stats: dict[str, Any]


def run_shard(
    scope: SessionScope,
    run_id: uuid.UUID,
    shard: int,
    *,
    source: BalanceSource | None = None,
    source_factory: SourceFactory = source_from_spec,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> ShardOutcome:
    """Run one shard to the end and fan in. Safe to call again at any point.

    Commits as it goes (``scope``): the shard's start, every batch, then its counts.
    """
    with scope() as session:
        info = runs.load_run(session, run_id)
        if not repository.begin_shard(session, run_id, shard):
            return ShardOutcome(False, False, {})
    id_range = repository.shard_range(shard, info.shard_count)
    own_source = source is None
    src = source if source is not None else source_factory(info.source)
    heartbeat = leases.Heartbeat(scope, run_id).start()  # the run's lease, while we work
    try:
        result = check_range(
            scope,
            info.day,
            id_range,
            src,
            threshold=info.threshold,
            correlation_id=info.correlation_id,
            batch_size=batch_size or get_settings().balance_batch_size,
            progress=progress,
        )
    finally:
        heartbeat.stop()
        if own_source:
            src.close()
    with scope() as session:
        counts = repository.range_counts(session, info.day, id_range)
        stats: dict[str, Any] = {
            **counts,
            "inserted": result.inserted,
            "rejected": result.rejected,
            "missing_by_reason": dict(result.missing_by_reason),
            "source": src.name,
        }
        finished = runs.finish_shard(session, run_id, shard, stats)
    log.info(
        "balance shard %s/%s of run %s: %s inserted, %s missing",
        shard,
        info.shard_count,
        run_id,
        result.inserted,
        counts["missing"],
    )
    return ShardOutcome(True, finished, stats)
