"""The outbox reconciler: the database is the source of truth, the broker a transport.

* Rows **stuck in 'Sending'** longer than SMS_RECONCILE_SENDING_AFTER_SECONDS (a worker
  died between claim and record, or the carrier timed out after accepting) are resolved
  by asking the carrier for a message with that body to that number since the claim:
  found -> 'Submitted' with its sid; not found -> back to 'Queued' (retry counted). The
  delay is far above the carrier timeout, so no live worker still holds such a row.
* Rows **Queued** and untouched for SMS_RECONCILE_QUEUED_AFTER_SECONDS (the broker lost
  the batch message) have their batches handed back to be enqueued again; enqueueing a
  batch twice is harmless because each row is claimed atomically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.session import session_scope
from app.models import Notification
from app.models.enums import SubmissionStatus
from app.notifications.carrier import CarrierClient, CarrierError
from app.notifications.sending import Claimed, SendResult, record, utcnow
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


def stuck_sending(
    session: Session, older_than: datetime, limit: int
) -> list[tuple[Claimed, uuid.UUID | None]]:  # noqa: E501
    rows = session.execute(
        select(
            Notification.id,
            Notification.phone_number,
            Notification.sms_content,
            Notification.segment_count,
            Notification.claimed_at,
            Notification.retry_count,
            Notification.batch_id,
        )
        .where(
            Notification.submission_status == SubmissionStatus.SENDING,
            Notification.claimed_at < older_than,
        )
        .order_by(Notification.claimed_at)
        .limit(limit)
    ).all()
    # claimed_at is never NULL in 'Sending' here: the WHERE compares it.
    return [(Claimed(r[0], r[1], r[2], r[3] or 1, r[4], r[5] or 0), r[6]) for r in rows if r[4]]


def stale_queued_batches(session: Session, older_than: datetime) -> set[uuid.UUID]:
    """Batches with Queued rows nobody touched since ``older_than``; touches them.

    Touching ``updated_at`` (not audited: nothing else changes) makes the next round
    wait a full period again instead of re-enqueueing the same batch every time.
    """
    batches = (
        update(Notification)
        .where(
            Notification.submission_status == SubmissionStatus.QUEUED,
            Notification.updated_at < older_than,
            Notification.batch_id.is_not(None),
        )
        .values(updated_at=text("LOCALTIMESTAMP"))
        .returning(Notification.batch_id)
    )
    return {b for (b,) in session.execute(batches).all() if b is not None}


def reconcile_outbox(
    carrier: CarrierClient,
    *,
    settings: Settings | None = None,
    now: datetime | None = None,
    window: SendWindow | None = None,
    limit: int = 1000,
) -> ReconcileResult:
    """One reconciler round. Opens its own transactions; carrier calls happen between them."""
    settings = settings or get_settings()
    now = now or utcnow()
    result = ReconcileResult()
    sending_cutoff = now - timedelta(seconds=settings.sms_reconcile_sending_after_seconds)
    with session_scope() as session:
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
    with session_scope() as session:
        record(session, results)
        if window.is_open(now):
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
