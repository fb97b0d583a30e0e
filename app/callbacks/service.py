"""Applying a status callback: forward only, first final status wins, duplicates no-ops.

Statuses are ranked (accepted/scheduled < queued < sending < sent < any final one) and a
callback is applied only when it ranks above the notification's latest delivery row:
callbacks come late, twice and out of order, and a late ``sent`` must never overwrite
``delivered``. A final row is never followed by another (as in polling); a different
final status after it is kept in the receipt and raised once as a system event.

The status words and their meaning are the delivery stage's (``app.delivery.mapping``);
only their order is added here.

A callback for a notification still in ``Sending`` (its create timed out or answered
5xx; the list lookup found nothing yet) or put back in ``Queued`` by the reconciler,
without a sid, settles it: the carrier has that message, so it is ``Submitted`` with the
callback's sid and must not be sent again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.callbacks import repository as repo
from app.callbacks.receipts import StatusReceipt
from app.campaign import costs
from app.campaign.costs import Cost
from app.db.audit import set_audit_context
from app.db.session import SessionScope, session_scope
from app.delivery.mapping import STATUS_MAP, map_report
from app.models.enums import DeliveryState, Severity, SubmissionStatus
from app.observability.events import record_event
from app.observability.metrics import CALLBACK_RECEIPTS, count_delivery_status

log = logging.getLogger(__name__)

SERVICE_USER = "callbacks"  # audit_log.user_id of the receiver's changes

# Forward order of Twilio's outbound status words; every final word ranks last.
RANK: dict[str, int] = {
    word: (4 if final else {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2}.get(word, 3))
    for word, (_, final) in STATUS_MAP.items()
}
assert RANK["sent"] == 3 and RANK["delivered"] == 4 and set(RANK) == set(STATUS_MAP)

_UNSETTLED = (str(SubmissionStatus.SENDING), str(SubmissionStatus.QUEUED))


class Outcome(StrEnum):
    APPLIED = "applied"  # the delivery status moved forward
    SETTLED = "settled"  # an unsettled send became Submitted with this sid (and applied)
    DUPLICATE = "duplicate"  # the latest status again
    STALE = "stale"  # an earlier status, late or out of order
    AFTER_FINAL = "after_final"  # the notification's status is already final
    UNKNOWN_STATUS = "unknown_status"  # a word the mapping table does not know
    UNKNOWN_NOTIFICATION = "unknown_notification"
    OTHER_MESSAGE = "other_message"  # the notification was submitted with another sid
    NOT_SENT = "not_sent"  # the notification is Failed or Skipped
    RECORDED = "recorded"  # inbound: stored (and handed to the inbound handlers)
    ERROR = "error"  # applying failed; the receipt is stored all the same


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _once(
    session: Session, event: str, nid: uuid.UUID, text: str, data: dict[str, object],
    correlation_id: uuid.UUID,
) -> None:  # fmt: skip
    if not repo.event_exists(session, event, nid):
        record_event(
            session, event, text, severity=Severity.WARNING,
            data={"notification_id": str(nid), **data}, correlation_id=correlation_id,
        )  # fmt: skip


def apply_status(
    session: Session, receipt: StatusReceipt, now: datetime, correlation_id: uuid.UUID
) -> Outcome:
    """Apply one status receipt in the caller's transaction; returns what it did."""
    sid = receipt.message_sid
    target = (
        repo.lock_notification(session, receipt.notification_id)
        if receipt.notification_id is not None
        else repo.lock_notification_by_sid(session, sid)
    )
    if target is None:
        return Outcome.UNKNOWN_NOTIFICATION
    if target.sid is not None and target.sid != sid:
        # Two carrier messages for one notification: a duplicate SMS went out.
        _once(session, "callback_for_other_message", target.id,
              "a status callback names a notification submitted with another sid: "
              "the carrier holds two messages for it", {"callback_sid": sid,
              "submitted_sid": target.sid}, correlation_id)  # fmt: skip
        return Outcome.OTHER_MESSAGE
    settled = False
    if target.sid is None:
        if target.submission_status not in _UNSETTLED:
            return Outcome.NOT_SENT
        settled = repo.settle_submitted(session, target.id, sid, now)
    # The carrier's segments and price come with the status (issue 20: the month's cost).
    cost = Cost.parse(receipt.num_segments, receipt.price, receipt.price_unit)
    costs.record(session, [(target.id, cost)])
    mapped = map_report(receipt.status, receipt.error_code, receipt.error_message)
    if not mapped.known:
        _once(session, "delivery_unknown_carrier_status", target.id,
              f"carrier status {mapped.carrier_status!r} is not in the mapping table; "
              "the callback is stored, not applied", {"carrier_status": mapped.carrier_status},
              correlation_id)  # fmt: skip
        return Outcome.SETTLED if settled else Outcome.UNKNOWN_STATUS
    latest = repo.latest_delivery(session, target.id)
    if latest is not None and latest.final:
        if mapped.final and str(mapped.status) != latest.status:
            _once(session, "delivery_contradicting_report", target.id,
                  f"carrier reports {mapped.carrier_status!r} after the final status "
                  f"{latest.status}; the first final status is kept",
                  {"final_status": latest.status, "reported_carrier_status":
                   mapped.carrier_status, "source": "callback"}, correlation_id)  # fmt: skip
        return Outcome.AFTER_FINAL
    rank = RANK[mapped.carrier_status]
    if latest is not None and RANK.get(latest.carrier_status or "", -1) >= rank:
        if settled:
            return Outcome.SETTLED
        same = latest.carrier_status == mapped.carrier_status
        return Outcome.DUPLICATE if same else Outcome.STALE
    delivered = mapped.status is DeliveryState.DELIVERED
    repo.add_delivery(
        session, target.id, mapped, now=now, delivered_at=now if delivered else None,
        attempts=latest.attempts if latest is not None else 0,
    )  # fmt: skip
    count_delivery_status(str(mapped.status), mapped.final)
    return Outcome.SETTLED if settled else Outcome.APPLIED


def handle_status(
    receipt: StatusReceipt,
    *,
    scope: SessionScope = session_scope,
    clock: Callable[[], datetime] = utcnow,
) -> Outcome:
    """Store and apply one status receipt in one transaction (takes a ``SessionScope``).

    Applying runs in a savepoint: if it fails, the receipt is still stored (outcome
    'error') and delivery polling, the safety net, settles the message later.
    """
    now, correlation_id = clock(), uuid.uuid4()
    with scope() as session:
        set_audit_context(session, correlation_id, SERVICE_USER)
        try:
            with session.begin_nested():
                outcome = apply_status(session, receipt, now, correlation_id)
        except SQLAlchemyError as exc:
            log.error("callback for notification %s not applied: %s",
                      receipt.notification_id, type(exc).__name__)  # fmt: skip
            outcome = Outcome.ERROR
        repo.add_receipt(
            session, kind="status", received_at=now, notification_id=receipt.notification_id,
            message_sid=receipt.message_sid, message_status=receipt.status[:50],
            error_code=None if receipt.error_code is None else str(receipt.error_code),
            num_segments=receipt.num_segments, price=receipt.price,
            price_unit=receipt.price_unit, outcome=str(outcome), params=receipt.params,
        )  # fmt: skip
    CALLBACK_RECEIPTS.labels("status", str(outcome)).inc()
    return outcome
