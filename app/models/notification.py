from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class Notification(Base):
    """Seed section 3.4: the SMS outbox and its submission record.

    Departures: ``qualification_id`` is UNIQUE (docs/design.md decision 2: exactly one SMS per
    qualification); ``submission_timestamp`` is NULL until the carrier accepted the
    message (the seed's NOT NULL would force a made-up time on queued rows).
    """

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False
    )
    qualification_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("monthly_qualifications.id"), nullable=False, unique=True
    )
    phone_number: Mapped[str] = mapped_column(String(20), nullable=False)
    sms_content: Mapped[str] = mapped_column(Text, nullable=False)
    character_count: Mapped[int | None] = mapped_column(Integer)
    carrier_reference_id: Mapped[str | None] = mapped_column(String(255))
    submission_timestamp: Mapped[datetime | None] = mapped_column()
    submission_status: Mapped[str | None] = mapped_column(String(50))
    batch_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    retry_count: Mapped[int | None] = mapped_column(Integer, server_default=text("0"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime | None] = mapped_column(server_default=text("CURRENT_TIMESTAMP"))

    # Not in the seed.
    segment_count: Mapped[int | None] = mapped_column(Integer)
    claimed_at: Mapped[datetime | None] = mapped_column()  # Queued -> Sending
    error_code: Mapped[str | None] = mapped_column(String(50))  # last carrier error code
    status_reason: Mapped[str | None] = mapped_column(String(255))  # why Failed / Skipped
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    # What the carrier says the message cost (issue 20, migration 0008): they arrive after
    # the create, with the status (callbacks, polled messages). Twilio's price is negative
    # (a charge), in ``price_unit``; ``carrier_segments`` is its NumSegments.
    carrier_segments: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 5))
    price_unit: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (
        CheckConstraint(
            "submission_status != 'Submitted' OR carrier_reference_id IS NOT NULL",
            name="chk_submitted_has_reference",
        ),
        Index("idx_notifications_customer", "customer_id"),
        Index("idx_notifications_carrier_ref", "carrier_reference_id"),
        Index("idx_notifications_submission", "submission_timestamp"),
        Index("idx_notifications_batch", "batch_id"),
    )
