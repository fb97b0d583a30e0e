from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class DeliveryStatus(Base):
    """Seed section 3.5: 1:N delivery history per notification (cascade on delete)."""

    __tablename__ = "delivery_status"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    notification_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("notifications.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(50), nullable=False)
    status_code: Mapped[str | None] = mapped_column(String(50))
    failure_reason: Mapped[str | None] = mapped_column(String(255))
    delivery_timestamp: Mapped[datetime | None] = mapped_column()
    last_check_timestamp: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int | None] = mapped_column(Integer, server_default=text("1"))
    final_status: Mapped[bool | None] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    # Not in the seed: the carrier's raw status word (kept even when unmapped).
    carrier_status: Mapped[str | None] = mapped_column(String(50))

    __table_args__ = (
        Index("idx_delivery_status_notification", "notification_id"),
        Index("idx_delivery_status_status", "status", "final_status"),
        Index("idx_delivery_status_timestamp", "last_check_timestamp"),
        Index(
            "idx_delivery_undelivered",
            "status",
            postgresql_where=text("status::text <> 'Delivered'::text"),
        ),
    )
