"""The outbox reconciler: the database is the source of truth, the broker a transport.

* Rows **stuck in 'Sending'** longer than SMS_RECONCILE_SENDING_AFTER_SECONDS (a worker
  died between claim and record, or the carrier timed out or answered 5xx after
  accepting) are settled by evidence that the carrier holds their message: a stored
  status callback naming the notification, or a lookup (a message with that body to that
  number since the claim) -> 'Submitted' with its sid. Without either, the row goes back
  to 'Queued' (retry counted) only once ``requeue_after_seconds`` have passed since its
  claim: by then a message the first attempt may have created can no longer be
  delivered, and its callbacks and list entry had their time to show (docs/sms.md,
  "Why a resend is safe"; docs/design.md decision 11). Until then it waits.
* Rows **Queued** and untouched for SMS_RECONCILE_QUEUED_AFTER_SECONDS (the broker lost
  the batch message) have their batches handed back to be enqueued again; enqueueing a
  batch twice is harmless because each row is claimed atomically. Not while the window
  is closed or sending is paused (``sms pause``): the batches wait for that themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.callbacks.repository import first_status_receipts
from app.campaign.switch import is_paused
from app.config import Settings, get_settings
from app.db.session import SessionScope
from app.models.enums import SubmissionStatus
from app.notifications.carrier import CarrierClient, CarrierError
from app.notifications.repository import Claimed, stale_queued_batches, stuck_sending
from app.notifications.sending import SendResult, record, utcnow
from app.notifications.window import SendWindow
from app.observability.events import record_event
from app.observability.metrics import RATE_LIMIT_WAITS, RECONCILER_ACTIONS
from app.ratelimit import RateLimiter, wait_for

RECONCILER = "sms_outbox"


def requeue_after_seconds(settings: Settings) -> float:
    """How long after its claim a 'Sending' row nobody found may go back to the queue.

    A create starts at most half SMS_RECONCILE_SENDING_AFTER_SECONDS after the claim (the
    sender renews older claims first) and ends within TWILIO_TIMEOUT_SECONDS, so any
    message it made exists by then. The carrier sends it within its ValidityPeriod or
    never; its callbacks and its list entry show within the list-lag margin after that.
    """
    latest_create = (
        settings.sms_reconcile_sending_after_seconds / 2 + settings.twilio_timeout_seconds
    )
    after = (
        latest_create
        + settings.sms_validity_period_seconds
        + settings.sms_reconcile_list_lag_margin_seconds
    )
    return max(after, settings.sms_reconcile_sending_after_seconds)


@dataclass
class ReconcileResult:
    found_by_callback: int = 0  # a stored status callback names the notification
    found_at_carrier: int = 0  # the lookup found the message
    requeued: int = 0
    waiting: int = 0  # not found yet, requeue delay not over: next round
    unresolved: int = 0  # the carrier could not be asked; next round
    stale_queued_batches: int = 0
    batches: set[uuid.UUID] = field(default_factory=set)  # to enqueue after the commit

    def as_dict(self) -> dict[str, int]:
        return {
            "found_by_callback": self.found_by_callback,
            "found_at_carrier": self.found_at_carrier,
            "requeued": self.requeued,
            "waiting": self.waiting,
            "unresolved": self.unresolved,
            "stale_queued_batches": self.stale_queued_batches,
            "batches_to_enqueue": len(self.batches),
        }


def reconcile_outbox(
    scope: SessionScope,
    carrier: CarrierClient,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    window: SendWindow | None = None,
    limit: int = 1000,
    reads: RateLimiter | None = None,
) -> ReconcileResult:
    """One reconciler round, in two transactions of ``scope`` with the carrier calls between
    them (no connection is held while the carrier is asked), so it is handed a
    ``SessionScope`` (production passes ``app.db.session.session_scope``).

    Every carrier lookup first waits for ``reads``, the cross-worker carrier-read limiter
    the delivery poller shares (``DELIVERY_CARRIER_RPS``): after an outage thousands of
    rows may wait out the list lag, and their lookups must not crowd out polling or
    trip the carrier's own limits."""
    settings = settings or get_settings()
    now = now or utcnow()
    result = ReconcileResult()
    sending_cutoff = now - timedelta(seconds=settings.sms_reconcile_sending_after_seconds)
    requeue_cutoff = now - timedelta(seconds=requeue_after_seconds(settings))
    with scope() as session:
        stuck = stuck_sending(session, sending_cutoff, limit)
        receipts = first_status_receipts(session, [claimed.id for claimed, _ in stuck])
    results: list[SendResult] = []
    for claimed, batch_id in stuck:
        if claimed.id in receipts:
            sid, received_at = receipts[claimed.id]
            results.append(_submitted(claimed, sid, received_at))
            result.found_by_callback += 1
            continue
        wait_for(reads, on_wait=RATE_LIMIT_WAITS.labels("carrier_reads").inc)
        try:
            found = carrier.find_sent(claimed.phone_number, claimed.body, claimed.claimed_at)
        except CarrierError:
            result.unresolved += 1
            continue
        if found is not None:
            results.append(_submitted(claimed, found.sid, found.date_created or now))
            result.found_at_carrier += 1
        elif claimed.claimed_at > requeue_cutoff:
            result.waiting += 1  # "not listed" is not "not sent" yet (list lag)
        else:
            not_found = SendResult(
                claimed, SubmissionStatus.QUEUED, reason="RECONCILED_NOT_FOUND", retry_increment=1
            )
            results.append(not_found)
            result.requeued += 1
            if batch_id is not None:
                result.batches.add(batch_id)

    window = window or SendWindow.from_settings(settings)
    with scope() as session:
        record(session, results)
        if window.is_open(now) and not is_paused(session):
            queued_cutoff = now - timedelta(seconds=settings.sms_reconcile_queued_after_seconds)
            stale = stale_queued_batches(session, queued_cutoff)
            result.stale_queued_batches = len(stale)
            result.batches |= stale
        if results or result.stale_queued_batches:
            record_event(
                session,
                "sms_outbox_reconciled",
                "outbox reconciler resolved stuck or lost sends",
                data=result.as_dict(),
            )
    for action, n in (
        ("found_by_callback", result.found_by_callback),
        ("found_at_carrier", result.found_at_carrier),
        ("requeued", result.requeued),
        ("waiting", result.waiting),
        ("unresolved", result.unresolved),
        ("batch_reenqueued", len(result.batches)),
    ):
        if n:
            RECONCILER_ACTIONS.labels(RECONCILER, action).inc(n)
    return result


def _submitted(claimed: Claimed, sid: str, at: datetime) -> SendResult:
    return SendResult(claimed, SubmissionStatus.SUBMITTED, sid=sid, submitted_at=at)
