"""Recording customers' opt-outs and opt-ins (append-only, audited, keyed by customer).

Two ways in:

* the carrier refuses a message with **21610** ("attempt to send to unsubscribed
  recipient": the number texted STOP to our sender) — the sender records the opt-out in
  the transaction that records the refusal;
* the customer texts us a **keyword** (``app.campaign.keywords``: STOP-type words opt out,
  START-type words opt back in, English or Hebrew) — the callback receiver's inbound
  handler (``app.callbacks.inbound.INBOUND_HANDLERS``) records it with the receipt.

Neither the message text nor the phone number is kept: a row names the customer, the
source, the matched keyword and the notification or inbound message it came from. The
audit trigger logs every row. Opted-out customers are skipped by the outbox (skip reason
OPTED_OUT) until they opt back in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from app.campaign import repository as repo
from app.campaign.keywords import Intent, intent
from app.campaign.repository import Choice
from app.db.audit import set_audit_context
from app.observability.metrics import SMS_OPT_OUTS

if TYPE_CHECKING:  # the receiver imports this module: no import cycle at run time
    from app.callbacks.inbound import InboundMessage

CARRIER_21610 = "carrier_21610"
INBOUND_KEYWORD = "inbound_keyword"
RECEIVER_USER = "callbacks"  # audit_log.user_id of inbound opt-outs


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def record_carrier_refusals(
    session: Session, notification_ids: Sequence[uuid.UUID], now: datetime | None = None
) -> int:
    """Opt out the customers of notifications the carrier refused with 21610; returns how
    many customers this newly opted out."""
    if not notification_ids:
        return 0
    now = now or utcnow()
    owners = repo.customers_of(session, notification_ids)
    choices = [
        Choice(customer, True, CARRIER_21610, now, notification_id=nid, correlation_id=corr)
        for nid, (customer, corr) in owners.items()
    ]
    added = repo.add_choices(session, choices)
    if added:
        SMS_OPT_OUTS.labels("opt_out", CARRIER_21610).inc(len(added))
    return len(added)


def inbound_handler(session: Session, message: InboundMessage) -> str | None:
    """The receiver's handler of inbound messages: STOP-type words opt the sender's
    customers out, START-type words back in. Returns the receipt's outcome word."""
    wanted = intent(message.keyword)
    if wanted not in (Intent.OPT_OUT, Intent.OPT_IN):
        return None
    if not message.customer_ids:
        return "unknown_sender"
    out = wanted is Intent.OPT_OUT
    correlation_id = uuid.uuid4()
    set_audit_context(session, correlation_id, RECEIVER_USER)
    choices = [
        Choice(customer, out, INBOUND_KEYWORD, message.received_at, keyword=message.keyword,
               message_sid=message.message_sid, correlation_id=correlation_id)
        for customer in message.customer_ids
    ]  # fmt: skip
    added = repo.add_choices(session, choices)
    if added:
        SMS_OPT_OUTS.labels(str(wanted), INBOUND_KEYWORD).inc(len(added))
    if out:
        return "opted_out" if added else "already_opted_out"
    return "opted_in" if added else "not_opted_out"
