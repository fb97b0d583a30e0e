from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, uuid_pk


class CustomerOptOut(Base):
    """A customer's SMS opt-out or opt-in, append-only history (issue 20, migration 0008).

    Keyed by customer, not by phone number (numbers change hands and customers change
    numbers); the customer's current choice is their latest row. ``source``: how it came
    (``carrier_21610``: the carrier refused a message to an unsubscribed number;
    ``inbound_keyword``: the customer texted STOP / START or a Hebrew equivalent). No
    message text and no phone number is kept; ``keyword`` is the matched word only.
    A trigger refuses UPDATE and DELETE; the audit trigger logs every insert.
    """

    __tablename__ = "customer_opt_outs"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False
    )
    opted_out: Mapped[bool] = mapped_column(Boolean, nullable=False)  # False: opted back in
    source: Mapped[str] = mapped_column(String(30), nullable=False)
    keyword: Mapped[str | None] = mapped_column(String(20))
    notification_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))  # 21610
    message_sid: Mapped[str | None] = mapped_column(String(64))  # the inbound message
    recorded_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    __table_args__ = (
        Index("idx_customer_opt_outs_customer", "customer_id", "recorded_at"),
        Index("idx_customer_opt_outs_recorded", "recorded_at"),
    )
