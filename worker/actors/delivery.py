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
from typing import Any

import dramatiq
from dramatiq.rate_limits.backends import RedisBackend
from periodiq import cron

from app.config import Settings, get_settings
from app.db.session import session_scope
from app.delivery.polling import CallLimiter, DeliveryPoller, Mode
from app.delivery.repository import running_days
from app.notifications.carrier import CarrierClient
from app.notifications.sending import LocalSegmentLimiter
from worker import broker as _broker  # noqa: F401  (the global broker before any actor)
from worker.ratelimit import SegmentRateLimiter

log = logging.getLogger(__name__)
LIMITER_KEY = "pn:ratelimit:carrier-reads"
_local = threading.local()
_lock = threading.Lock()
_limiter: Any = None


def carrier_read_limiter(
    settings: Settings | None = None, client: Any = None
) -> CallLimiter | None:
    """Carrier read calls per second across every worker (Redis), else in-process.

    The same sliding-log limiter as the sends, under its own key and limit: polling must
    never eat the SMS send budget (SMS_MPS), nor exceed the carrier's API rate.
    """
    settings = settings or get_settings()
    if settings.delivery_carrier_rps <= 0:
        return None
    if client is None:
        client = _broker.redis_client()
    if client is None and settings.redis_url is not None:
        import redis

        client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    if client is None:
        return LocalSegmentLimiter(settings.delivery_carrier_rps, 1.0)
    return SegmentRateLimiter(
        RedisBackend(client=client),
        LIMITER_KEY,
        limit=int(max(1, settings.delivery_carrier_rps)),
        window_seconds=1.0,
    )


def _poller() -> DeliveryPoller:
    # One carrier client per worker thread (its HTTP session is not shared); one limiter
    # object per process (the limit itself lives in Redis).
    global _limiter
    with _lock:
        if _limiter is None:
            _limiter = carrier_read_limiter() or False
    poller: DeliveryPoller | None = getattr(_local, "poller", None)
    if poller is None:
        poller = DeliveryPoller(CarrierClient.from_settings(), _limiter or None)
        _local.poller = poller
    return poller


@dramatiq.actor(actor_name="delivery.poll_day", queue_name="delivery", max_retries=5)
def poll_day(day: str, mode: str = "auto") -> None:
    _poller().poll_day(date.fromisoformat(day), Mode(mode))


@dramatiq.actor(actor_name="delivery.poll", queue_name="delivery", max_retries=3)
def poll(lookback_days: int | None = None, mode: str = "auto") -> None:
    poller = _poller()
    with session_scope() as session:
        days = poller.due_days(session, lookback_days)
        busy = running_days(session)
    for due in days:
        if due.day.isoformat() in busy:
            continue  # its batch is still working; the next round looks again
        poll_day.send(due.day.isoformat(), mode)
    log.info("delivery poll: %d day batches", len(days))


@dramatiq.actor(
    actor_name="delivery.poll_kick",
    queue_name="delivery",
    periodic=cron(get_settings().delivery_poll_cron),
    max_retries=0,
)
def poll_kick() -> None:
    poll.send()
