"""Starting a day's run, and running a whole day in this process (the CLI's ``run``)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from app.balances import repository, runs
from app.balances.checks import refuse_future
from app.balances.shards import Progress, ShardOutcome, run_shard
from app.balances.sources import BalanceSource
from app.config import get_settings
from app.db.session import session_scope


def today_local() -> date:
    return datetime.now(get_settings().tz).date()


def start_day(
    day: date,
    *,
    shard_count: int | None = None,
    source_spec: str | None = None,
    triggered_by: str = "operator",
) -> runs.RunInfo:
    """Validate the date and create the run with its shards (committed on return)."""
    refuse_future(day, today_local())
    settings = get_settings()
    with session_scope() as session:
        return runs.start_run(
            session,
            day,
            shard_count=shard_count or settings.balance_shards,
            threshold=settings.qualification_threshold,
            source=source_spec or settings.balance_source,
            triggered_by=triggered_by,
        )


def count_day_work(day: date) -> int:
    """Active customers (the progress bar's total)."""
    with session_scope() as session:
        return repository.count_active(session)


def run_day(
    day: date,
    source: BalanceSource,
    *,
    source_spec: str | None = None,
    shard_count: int | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
    triggered_by: str = "operator",
) -> tuple[uuid.UUID, dict[str, object]]:
    """Start a run and run every shard here, one after the other; returns id and totals."""
    info = start_day(
        day, shard_count=shard_count, source_spec=source_spec, triggered_by=triggered_by
    )
    outcomes: list[ShardOutcome] = []
    for shard in range(info.shard_count):
        outcomes.append(
            run_shard(info.run_id, shard, source=source, batch_size=batch_size, progress=progress)
        )
    with session_scope() as session:
        totals = runs.aggregate(session, info.run_id)
    return info.run_id, totals
