from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, uuid_pk


class CallbackReceipt(Base):
    """Every signed carrier callback as it came in (issue 19; append-only, migration 0003).

    ``kind`` is 'status' (a message's status changed) or 'inbound' (a customer texted us).
    ``notification_id`` is the one named in the callback's URL path, kept even when no
    such notification exists (no foreign key: a receipt outlives archiving and erasure).
    ``params`` is the form minus the message text and the customer's phone number (no
    personal data); ``outcome`` is what applying the receipt did
    (app.callbacks.service.Outcome).
    """

    __tablename__ = "callback_receipts"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    received_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    notification_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    message_sid: Mapped[str | None] = mapped_column(String(64))
    message_status: Mapped[str | None] = mapped_column(String(50))
    error_code: Mapped[str | None] = mapped_column(String(50))
    num_segments: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[str | None] = mapped_column(String(32))  # as sent: a decimal string
    price_unit: Mapped[str | None] = mapped_column(String(8))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # inbound
    keyword: Mapped[str | None] = mapped_column(String(20))  # inbound: STOP, START, HELP...
    outcome: Mapped[str] = mapped_column(String(30), nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (
        Index("idx_callback_receipts_notification", "notification_id", "received_at"),
        Index("idx_callback_receipts_sid", "message_sid"),
        Index("idx_callback_receipts_received", "received_at"),
    )
