"""Starting a day's run, and running a whole day in this process (the CLI's ``run``)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy.orm import Session

from app.balances import runs
from app.balances.checks import refuse_future
from app.balances.shards import Progress, ShardOutcome, run_shard
from app.balances.sources import BalanceSource
from app.config import get_settings
from app.db.session import SessionScope


def today_local() -> date:
    return datetime.now(get_settings().tz).date()


def start_day(
    session: Session,
    day: date,
    *,
    shard_count: int | None = None,
    source_spec: str | None = None,
    triggered_by: str = "operator",
) -> runs.RunInfo:
    """Validate the date and create the run with its shards.

    The caller commits, then sends the shards (never before: a worker could take a shard
    whose run it cannot see yet).
    """
    refuse_future(day, today_local())
    settings = get_settings()
    return runs.start_run(
        session,
        day,
        shard_count=shard_count or settings.balance_shards,
        threshold=settings.qualification_threshold,
        source=source_spec or settings.balance_source,
        triggered_by=triggered_by,
    )


def run_day(
    scope: SessionScope,
    day: date,
    source: BalanceSource,
    *,
    source_spec: str | None = None,
    shard_count: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    triggered_by: str = "operator",
) -> tuple[uuid.UUID, dict[str, object]]:
    """Start a run and run every shard here, one after the other; returns id and totals.

    Commits as it goes (``scope``): the run, then each shard's own transactions.
    """
    with scope() as session:
        info = start_day(
            session,
            day,
            shard_count=shard_count,
            source_spec=source_spec,
            triggered_by=triggered_by,
        )
    outcomes: list[ShardOutcome] = []
    for shard in range(info.shard_count):
        outcomes.append(
            run_shard(
                scope, info.run_id, shard, source=source, batch_size=batch_size, progress=progress
            )
        )
    with scope() as session:
        totals = runs.aggregate(session, info.run_id)
    return info.run_id, totals
