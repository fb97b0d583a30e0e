"""Balance-check actors: start a day, check one shard, the daily kicks, gap repair.

Thin: each calls a service in ``app.balances`` inside its own transactions. Follow-up
messages are sent only after the transaction that created their rows has committed.
The periodic kicks (periodiq: local time of the scheduler, run it with TZ set to the
bank's time zone) only enqueue ordinary actors, so a missed or duplicated kick is
harmless and retries work normally; the daily kick also catches up every recent day
that has no finished run.
"""

from __future__ import annotations

import logging
import uuid
from datetime import date, datetime

import dramatiq
from periodiq import cron

from app.balances import day as day_service
from app.balances import gaps, runs, shards
from app.balances.checks import FutureDateError
from app.balances.sources import BalanceSource, source_from_spec
from app.balances.sources.core_banking import CoreBankingSource, RateLimited
from app.config import get_settings
from app.db.session import session_scope
from worker import limits
from worker.broker import actor
from worker.enqueue import enqueue
from worker.resources import Queue

log = logging.getLogger(__name__)

MAX_FAILURE_RETRIES = 10


def _cron(hhmm: str) -> str:
    hour, minute = hhmm.split(":")
    return f"{int(minute)} {int(hour)} * * *"


def _retry_when(retries: int, exc: BaseException) -> bool:
    # A rate-limit back-off is not a failure: it must never exhaust the retry budget.
    return isinstance(exc, dramatiq.Retry) or retries < MAX_FAILURE_RETRIES


def worker_source(spec: str | None) -> BalanceSource:
    """The run's source; core-banking requests share one limiter across all workers."""
    settings = get_settings()
    if spec is None or spec == "http":
        return CoreBankingSource.from_settings(settings, limiter=limits.core_banking(settings))
    return source_from_spec(spec)


def send_shards(run_id: uuid.UUID | str, shard_numbers: list[int]) -> None:
    for shard in shard_numbers:
        enqueue(check_shard, str(run_id), shard)


@actor(
    "balances.start_day",
    Queue.BALANCES,
    retry_when=_retry_when,
    throws=(FutureDateError,),
)
def start_day(day: str, shard_count: int | None = None, source: str | None = None) -> None:
    with session_scope() as session:
        info = day_service.start_day(
            session,
            date.fromisoformat(day),
            shard_count=shard_count,
            source_spec=source,
            triggered_by="worker",
        )
    send_shards(info.run_id, list(range(info.shard_count)))


@actor(
    "balances.check_shard",
    Queue.BALANCES,
    retry_when=_retry_when,
    time_limit=2 * 60 * 60 * 1000,
)
def check_shard(run_id: str, shard: int) -> None:
    try:
        shards.run_shard(session_scope, uuid.UUID(run_id), shard, source_factory=worker_source)
    except RateLimited as exc:
        raise dramatiq.Retry(delay=int(exc.delay * 1000)) from None


@actor("balances.repair_gaps", Queue.BALANCES, retry_when=_retry_when)
def repair_gaps(start: str, end: str) -> None:
    report = gaps.repair_gaps(
        session_scope,
        date.fromisoformat(start),
        date.fromisoformat(end),
        source=None,
        triggered_by="worker",
    )
    log.info(
        "gap repair %s..%s: %s gaps, %s filled, %s still missing",
        start,
        end,
        report.gaps_found,
        report.filled,
        report.still_missing,
    )


@actor(
    "balances.daily_kick",
    Queue.BALANCES,
    periodic=cron(_cron(get_settings().balance_kick_time)),
    max_retries=0,
)
def daily_kick() -> None:
    settings = get_settings()
    today = datetime.now(settings.tz).date()
    with session_scope() as session:
        plan = runs.plan_kick(session, today, settings.balance_catchup_days)
    for day in plan.to_start:
        enqueue(start_day, day.isoformat())
    for run_id, unfinished in plan.to_resume:
        send_shards(run_id, unfinished)
    log.info(
        "balance kick: start %s, resume %s runs",
        [d.isoformat() for d in plan.to_start],
        len(plan.to_resume),
    )


@actor(
    "balances.gap_repair_kick",
    Queue.BALANCES,
    periodic=cron(_cron(get_settings().balance_gap_repair_time)),
    max_retries=0,
)
def gap_repair_kick() -> None:
    today = datetime.now(get_settings().tz).date()
    start, end = gaps.kick_window(today)
    enqueue(repair_gaps, start.isoformat(), end.isoformat())
