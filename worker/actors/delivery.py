"""Delivery-tracking actors (queue 'delivery'; thin: each calls app.delivery).

* ``delivery.poll_kick`` (periodiq, DELIVERY_POLL_CRON, default every 3 minutes): enqueues
  ``delivery.poll``. Every round re-reads the database, so a missed kick is caught up by
  the next one.
* ``delivery.poll``: finds the submission days with messages due for a check (backoff by
  attempts, deadline) and fans out one ``delivery.poll_day`` per day, skipping a day whose
  batch is still running.
* ``delivery.poll_day(day, mode)``: one bulk list pass for the day, per-message fetches
  for its stragglers, the deadline verdicts.
"""

from __future__ import annotations

import logging
import threading
from datetime import date

from periodiq import cron

from app.config import get_settings
from app.db.session import session_scope
from app.delivery.polling import DeliveryPoller, Mode
from app.delivery.repository.runs import running_days
from app.notifications.carrier import CarrierClient
from worker import limits
from worker.broker import actor
from worker.enqueue import enqueue
from worker.resources import Queue

log = logging.getLogger(__name__)
_local = threading.local()


def _poller() -> DeliveryPoller:
    # One carrier client per worker thread (its HTTP session is not shared); the read
    # limiter is the process's (the limit itself lives in Redis).
    poller: DeliveryPoller | None = getattr(_local, "poller", None)
    if poller is None:
        poller = DeliveryPoller(CarrierClient.from_settings(), limits.carrier_reads())
        _local.poller = poller
    return poller


@actor("delivery.poll_day", Queue.DELIVERY, max_retries=5)
def poll_day(day: str, mode: str = "auto") -> None:
    _poller().poll_day(session_scope, date.fromisoformat(day), Mode(mode))


@actor("delivery.poll", Queue.DELIVERY, max_retries=3)
def poll(lookback_days: int | None = None, mode: str = "auto") -> None:
    poller = _poller()
    with session_scope() as session:
        days = poller.due_days(session, lookback_days)
        busy = running_days(session)
    for due in days:
        if due.day.isoformat() in busy:
            continue  # its batch is still working; the next round looks again
        enqueue(poll_day, due.day.isoformat(), mode)
    log.info("delivery poll: %d day batches", len(days))


@actor(
    "delivery.poll_kick",
    Queue.DELIVERY,
    periodic=cron(get_settings().delivery_poll_cron),
    max_retries=0,
)
def poll_kick() -> None:
    enqueue(poll)
