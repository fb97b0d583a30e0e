"""Qualification actors: the month's run, and the monthly kick that catches up.

Thin: each opens the service (app.qualification) and returns. The kick runs on the 1st
(QUALIFICATION_KICK_TIME, local time of the scheduler: run periodiq with TZ set to the
bank's time zone) and re-enqueues every closed month in the window that has no finished
run; each run, once finished, starts the notification stage for its month.
"""

from __future__ import annotations

import logging

import dramatiq
from periodiq import cron

from app.config import get_settings
from app.db.session import session_scope
from app.months import Month
from app.qualification import schedule, service
from app.qualification.months import MonthNotClosed, QualificationError
from app.qualification.repository import runs

log = logging.getLogger(__name__)

PREPARE_ACTOR = "notifications.prepare_month"
PREPARE_QUEUE = "outbox"


def _kick_cron() -> str:
    settings = get_settings()
    hour, minute = settings.qualification_kick_time.split(":")
    return f"{int(minute)} {int(hour)} {settings.qualification_kick_days} * *"


@dramatiq.actor(
    actor_name="qualification.run_month",
    queue_name="qualification",
    max_retries=5,
    # Operator-level refusals (month not closed, no gap repair) are not retried.
    throws=(QualificationError,),
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
    """Enqueue ``notifications.prepare_month(month)`` (after the run's commit), then note it.

    The SMS stage's actor may live in a module this worker did not import; the message
    is then sent by name, and the worker that consumes the 'outbox' queue runs it.
    """
    broker = dramatiq.get_broker()
    try:
        broker.get_actor(PREPARE_ACTOR).send(month)
    except dramatiq.errors.ActorNotFound:
        broker.enqueue(
            dramatiq.Message(
                queue_name=PREPARE_QUEUE,
                actor_name=PREPARE_ACTOR,
                args=(month,),
                kwargs={},
                options={},
            )
        )
    with session_scope() as session:
        runs.mark_notifications_started(session, Month.parse(month))


@dramatiq.actor(
    actor_name="qualification.monthly_kick",
    queue_name="qualification",
    periodic=cron(_kick_cron()),
    max_retries=0,
)
def monthly_kick() -> None:
    settings = get_settings()
    with session_scope() as session:
        plan = schedule.plan_kick(session, settings.tz, settings.qualification_catchup_months)
    for month in plan.to_qualify:
        run_month.send(str(month))
    for month in plan.to_notify:
        start_notification_stage(str(month))
    log.info(
        "qualification kick: qualify %s, notify %s",
        [str(m) for m in plan.to_qualify],
        [str(m) for m in plan.to_notify],
    )
