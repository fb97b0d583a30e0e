"""SMS actors (thin: open a session scope or a Sender, call app.notifications, enqueue follow-ups).

* ``notifications.prepare_month(month)``: enqueued by the qualification stage's monthly
  kick; fills the outbox and fans out one ``send_batch`` per batch with Queued rows.
* ``notifications.send_batch(batch_id)``: sends one batch. When it must wait (send
  window closed, sending paused by ``sms pause`` or the circuit breaker, carrier
  backoff, time budget used up) it enqueues a *fresh* message
  with a delay instead of raising: waiting never burns retries or reaches Sentry.
* ``notifications.reconcile()``: resolves rows stuck in Sending, re-enqueues lost
  batches; ``notifications.reconcile_kick`` is its periodic (thin) kick.
"""

from __future__ import annotations

import logging
import threading
import uuid

from periodiq import cron

from app.campaign.controls import SendControls
from app.config import get_settings
from app.db.session import session_scope
from app.models.enums import Severity
from app.months import Month
from app.notifications.carrier import CarrierClient
from app.notifications.outbox import OutboxError, prepare_streaming
from app.notifications.reconcile import reconcile_outbox
from app.notifications.repository import queued_batches
from app.notifications.sending import Sender, utcnow
from app.notifications.window import SendWindow
from app.observability.events import record_event
from worker import limits
from worker.broker import actor
from worker.enqueue import enqueue, enqueue_in
from worker.resources import Queue

log = logging.getLogger(__name__)
_local = threading.local()
_controls_lock = threading.Lock()
_controls: list[SendControls] = []


def _send_controls() -> SendControls:
    # One per process (per settings object): the kill switch's cache and the breaker's
    # window are shared by the process's sender threads.
    with _controls_lock:
        if not _controls or _controls[0].settings is not get_settings():
            _controls[:] = [SendControls()]
        return _controls[0]


def _sender() -> Sender:
    # One carrier client per worker thread (its HTTP session is not shared); the segment
    # limiter is the process's (the limit itself lives in Redis).
    sender: Sender | None = getattr(_local, "sender", None)
    if sender is None:
        sender = Sender(
            CarrierClient.from_settings(), limits.sms_segments(), controls=_send_controls()
        )
        _local.sender = sender
    return sender


def _enqueue_batches(batches: list[uuid.UUID] | set[uuid.UUID]) -> None:
    delay = SendWindow.from_settings().seconds_until_open(utcnow())
    for batch in sorted(batches, key=str):
        enqueue_in(delay, send_batch, str(batch))


# Its own queue, consumed by the general workers, not by the senders: preparing is
# database and template work, and in a sender process it would hold the interpreter
# lock between a rate-limit grant and its carrier call (docs/sms.md, rate limit).
@actor("notifications.prepare_month", Queue.OUTBOX, max_retries=5)
def prepare_month(month: str) -> None:
    target = Month.parse(month)
    try:
        # Chunk by chunk: each chunk's batches go to the senders right after its commit.
        result = prepare_streaming(session_scope, target, _enqueue_batches, triggered_by="worker")
    except OutboxError as exc:
        with session_scope() as session:
            record_event(
                session, "notifications_prepare_refused", str(exc), severity=Severity.ERROR,
                data={"month": month},
            )  # fmt: skip
        log.error("prepare %s refused: %s", month, exc)
        return
    with session_scope() as session:
        # Also batches of an earlier prepare that are still waiting (idempotent re-run).
        batches = set(queued_batches(session, target)) - set(result.batches)
    log.info("prepared %s: %s", month, result.as_dict())
    for warning in result.warnings:  # also a system event (sms_multi_segment_messages)
        log.warning("prepare %s: %s", month, warning)
    _enqueue_batches(batches)


@actor("notifications.send_batch", Queue.SMS, max_retries=10)
def send_batch(batch_id: str) -> None:
    outcome = _sender().send_batch(session_scope, uuid.UUID(batch_id))
    if outcome.defer_seconds is not None:
        enqueue_in(outcome.defer_seconds, send_batch, batch_id)


@actor("notifications.reconcile", Queue.MAINTENANCE, max_retries=3)
def reconcile() -> None:
    result = reconcile_outbox(session_scope, _sender().carrier, reads=limits.carrier_reads())
    _enqueue_batches(result.batches)


@actor("notifications.reconcile_kick", Queue.MAINTENANCE, periodic=cron("*/5 * * * *"))
def reconcile_kick() -> None:
    # Thin kick: every round looks at the whole outbox, so a missed round is caught up.
    enqueue(reconcile)
