"""The outbox reconciler: the database is the source of truth, the broker a transport.

* Rows **stuck in 'Sending'** longer than SMS_RECONCILE_SENDING_AFTER_SECONDS (a worker
  died between claim and record, or the carrier timed out after accepting) are resolved
  by asking the carrier for a message with that body to that number since the claim:
  found -> 'Submitted' with its sid; not found -> back to 'Queued' (retry counted). The
  delay is far above the carrier timeout, so no live worker still holds such a row.
* Rows **Queued** and untouched for SMS_RECONCILE_QUEUED_AFTER_SECONDS (the broker lost
  the batch message) have their batches handed back to be enqueued again; enqueueing a
  batch twice is harmless because each row is claimed atomically. Not while the window
  is closed or sending is paused (``sms pause``): the batches wait for that themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.campaign.switch import is_paused
from app.config import Settings, get_settings
from app.db.session import SessionScope
from app.models.enums import SubmissionStatus
from app.notifications.carrier import CarrierClient, CarrierError
from app.notifications.repository import stale_queued_batches, stuck_sending
from app.notifications.sending import SendResult, record, utcnow
from app.notifications.window import SendWindow
from app.observability.events import record_event
from app.observability.metrics import RECONCILER_ACTIONS

RECONCILER = "sms_outbox"


@dataclass
class ReconcileResult:
    found_at_carrier: int = 0
    requeued: int = 0
    unresolved: int = 0  # the carrier could not be asked; next round
    stale_queued_batches: int = 0
    batches: set[uuid.UUID] = field(default_factory=set)  # to enqueue after the commit

    def as_dict(self) -> dict[str, int]:
        return {
            "found_at_carrier": self.found_at_carrier,
            "requeued": self.requeued,
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
) -> ReconcileResult:
    """One reconciler round, in two transactions of ``scope`` with the carrier calls between
    them (no connection is held while the carrier is asked), so it is handed a
    ``SessionScope`` (production passes ``app.db.session.session_scope``)."""
    settings = settings or get_settings()
    now = now or utcnow()
    result = ReconcileResult()
    sending_cutoff = now - timedelta(seconds=settings.sms_reconcile_sending_after_seconds)
    with scope() as session:
        stuck = stuck_sending(session, sending_cutoff, limit)
    results: list[SendResult] = []
    for claimed, batch_id in stuck:
        try:
            found = carrier.find_sent(claimed.phone_number, claimed.body, claimed.claimed_at)
        except CarrierError:
            result.unresolved += 1
            continue
        if found is not None:
            submitted_at = found.date_created or now
            results.append(
                SendResult(
                    claimed, SubmissionStatus.SUBMITTED, sid=found.sid, submitted_at=submitted_at
                )
            )
            result.found_at_carrier += 1
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
        if result.found_at_carrier or result.requeued or result.stale_queued_batches:
            record_event(
                session,
                "sms_outbox_reconciled",
                "outbox reconciler resolved stuck or lost sends",
                data=result.as_dict(),
            )
    for action, n in (
        ("found_at_carrier", result.found_at_carrier),
        ("requeued", result.requeued),
        ("unresolved", result.unresolved),
        ("batch_reenqueued", len(result.batches)),
    ):
        if n:
            RECONCILER_ACTIONS.labels(RECONCILER, action).inc(n)
    return result
