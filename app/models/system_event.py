from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class SystemEvent(Base):
    """Seed section 3.7. Never carries personal data (ids and counts only)."""

    __tablename__ = "system_events"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    severity: Mapped[str | None] = mapped_column(String(50))
    service_name: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    event_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        Index("idx_system_events_type", "event_type"),
        Index("idx_system_events_severity", "severity"),
        Index("idx_system_events_service", "service_name"),
        Index("idx_system_events_timestamp", text("created_at DESC")),
    )
