"""Qualification actors: the month's run, and the monthly kick that catches up.

Thin: each opens the service (app.qualification) and returns. The kick runs on the 1st
(QUALIFICATION_KICK_TIME, local time of the scheduler: run periodiq with TZ set to the
bank's time zone) and re-enqueues every closed month in the window that has no finished
run; each run, once finished, starts the notification stage for its month.
"""

from __future__ import annotations

import logging

from periodiq import cron

from app.balances.sources import SourceNotConfigured
from app.config import get_settings
from app.db.session import session_scope
from app.months import Month
from app.qualification import schedule, service
from app.qualification.months import MonthNotClosed, QualificationError
from app.qualification.repository import runs
from worker.actors.notifications import prepare_month
from worker.broker import actor
from worker.enqueue import enqueue
from worker.resources import Queue

log = logging.getLogger(__name__)


def _kick_cron() -> str:
    settings = get_settings()
    hour, minute = settings.qualification_kick_time.split(":")
    return f"{int(minute)} {int(hour)} {settings.qualification_kick_days} * *"


@actor(
    "qualification.run_month",
    Queue.QUALIFICATION,
    max_retries=5,
    # Operator-level refusals (month not closed, no gap repair source) are not retried.
    throws=(QualificationError, SourceNotConfigured),
    time_limit=2 * 60 * 60 * 1000,
)
def run_month(month: str, recompute: bool = False, start_notifications: bool = True) -> None:
    try:
        service.run_month(
            session_scope,
            Month.parse(month),
            gap_repair=service.default_gap_repair,
            recompute=recompute,
            triggered_by="worker",
        )
    except MonthNotClosed as exc:
        log.warning("qualification.run_month: %s", exc)
        return
    if start_notifications:
        start_notification_stage(month)


def start_notification_stage(month: str) -> None:
    """Enqueue ``notifications.prepare_month(month)`` (after the run's commit), then note it."""
    enqueue(prepare_month, month)
    with session_scope() as session:
        runs.mark_notifications_started(session, Month.parse(month))


@actor(
    "qualification.monthly_kick",
    Queue.QUALIFICATION,
    periodic=cron(_kick_cron()),
    max_retries=0,
)
def monthly_kick() -> None:
    settings = get_settings()
    with session_scope() as session:
        plan = schedule.plan_kick(session, settings.tz, settings.qualification_catchup_months)
    for month in plan.to_qualify:
        enqueue(run_month, str(month))
    for month in plan.to_notify:
        start_notification_stage(str(month))
    log.info(
        "qualification kick: qualify %s, notify %s",
        [str(m) for m in plan.to_qualify],
        [str(m) for m in plan.to_notify],
    )
