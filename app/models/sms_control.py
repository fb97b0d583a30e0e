from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, uuid_pk


class SmsControl(Base):
    """The SMS kill switch (issue 20, migration 0008): one row per switch (``name``).

    The database is its source of truth; senders re-read it every few seconds. Every
    change is audited (old and new values) and raised as a system event. ``source`` is
    ``operator`` (``premium-notify sms pause|resume``) or ``breaker`` (the automatic pause
    when the carrier refuses too many messages).
    """

    __tablename__ = "sms_controls"

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(String(30), nullable=False, unique=True)
    paused: Mapped[bool] = mapped_column(Boolean, nullable=False)
    reason: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(20), nullable=False)
    changed_by: Mapped[str | None] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
