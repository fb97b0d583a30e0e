"""Messages customers send us (Twilio's inbound webhook): stored, then handed on.

Only what the system may keep is recorded: the customer (found by the sender's number,
which itself is not stored) and the message's keyword when it is exactly one of Twilio's
opt-out / opt-in / help words, English or Hebrew (``app.campaign.keywords``); never
the text.

``INBOUND_HANDLERS`` is the extension point: each handler gets the transaction and the
``InboundMessage`` and returns an outcome word (or None). Opt-outs (issue 20:
``app.campaign.optouts.inbound_handler``) are handled there; the receipt is stored in
the same transaction whatever they do.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.callbacks import repository as repo
from app.callbacks.receipts import InboundReceipt
from app.callbacks.service import Outcome, utcnow
from app.campaign.optouts import inbound_handler
from app.db.session import SessionScope, session_scope
from app.observability.metrics import CALLBACK_RECEIPTS


@dataclass(frozen=True)
class InboundMessage:
    """An inbound message as handlers see it (no phone number, no text)."""

    message_sid: str
    customer_ids: list[uuid.UUID]  # customers with the sender's number (usually one)
    keyword: str | None
    received_at: datetime


InboundHandler = Callable[[Session, InboundMessage], str | None]

INBOUND_HANDLERS: tuple[InboundHandler, ...] = (inbound_handler,)  # opt-outs and opt-ins


def handle_inbound(
    receipt: InboundReceipt,
    *,
    scope: SessionScope = session_scope,
    clock: Callable[[], datetime] = utcnow,
    handlers: Sequence[InboundHandler] = INBOUND_HANDLERS,
) -> str:
    """Store one inbound message's receipt and run the handlers (takes a ``SessionScope``)."""
    now = clock()
    with scope() as session:
        customers = repo.customers_by_phone(session, receipt.sender)
        message = InboundMessage(receipt.message_sid, customers, receipt.keyword, now)
        outcome: str = Outcome.RECORDED
        for handler in handlers:
            outcome = handler(session, message) or outcome
        repo.add_receipt(
            session, kind="inbound", received_at=now, message_sid=receipt.message_sid,
            customer_id=customers[0] if customers else None, keyword=receipt.keyword,
            outcome=str(outcome)[:30], params=receipt.params,
        )  # fmt: skip
    CALLBACK_RECEIPTS.labels("inbound", str(outcome)[:30]).inc()
    return str(outcome)
