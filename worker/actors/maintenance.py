"""Maintenance actors: the daily retention run, the partitions kept ahead, their kicks.

The partitions kick (PARTITIONS_KICK_TIME, 04:15 by default) creates the missing
partitions of the hot window (the months before the current one still inside
RETENTION_HOT_DAYS), the current month and the next PARTITIONS_MONTHS_AHEAD months
(idempotent: a duplicate kick creates nothing); retention runs also create those ahead.

The kick fires at RETENTION_KICK_TIME in the scheduler's local time (run periodiq with
TZ set to the bank's time zone). 04:30 by default: Israel's clocks change at 02:00, so
02:00-02:59 does not exist on the spring day and 01:00-01:59 happens twice in autumn;
anything from 03:00 exists exactly once every day. It also keeps clear of the backup
(03:30) and of the morning's business stages.

Catching up is built in: retention is cumulative (each run retires every month past
its cutoff), so a day the scheduler missed is covered by the next run. The run itself
is idempotent and holds an advisory lock, so a duplicate kick (periodiq restart inside
the minute) is harmless.
"""

from __future__ import annotations

import logging

from periodiq import cron

from app.config import get_settings
from app.db.session import session_scope
from app.maintenance import partitions, retention
from app.months import local_today
from worker.broker import actor
from worker.enqueue import enqueue
from worker.resources import Queue

log = logging.getLogger(__name__)


def _kick_cron(at: str | None = None) -> str:
    hour, minute = (at or get_settings().retention_kick_time).split(":")
    return f"{int(minute)} {int(hour)} * * *"


@actor(
    "maintenance.retention_run",
    Queue.MAINTENANCE,
    max_retries=3,
    time_limit=6 * 60 * 60 * 1000,
)
def retention_run(triggered_by: str = "worker") -> None:
    result = retention.run(session_scope, triggered_by=triggered_by)
    if result.skipped:
        log.info("retention: %s", result.skipped)
        return
    log.info(
        "retention run %s: %d sets exported, %d partitions dropped, %d sets expired",
        result.run_id,
        len(result.exported),
        len(result.dropped),
        len(result.expired),
    )


@actor(
    "maintenance.retention_kick",
    Queue.MAINTENANCE,
    periodic=cron(_kick_cron()),
    max_retries=0,
)
def retention_kick() -> None:
    enqueue(retention_run, "scheduler")


@actor("maintenance.partitions_ensure", Queue.MAINTENANCE, max_retries=3)
def partitions_ensure(triggered_by: str = "worker") -> None:
    settings = get_settings()
    with session_scope() as session:
        created = partitions.ensure_ahead(
            session,
            local_today(settings.tz),
            settings.partitions_months_ahead,
            months_back=settings.retention_hot_days // 31,
        )
    log.info("partitions (%s): created %s", triggered_by, created or "none")


@actor(
    "maintenance.partitions_kick",
    Queue.MAINTENANCE,
    periodic=cron(_kick_cron(get_settings().partitions_kick_time)),
    max_retries=0,
)
def partitions_kick() -> None:
    enqueue(partitions_ensure, "scheduler")
