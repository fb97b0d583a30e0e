from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, uuid_pk


class AuditLog(Base):
    """Seed section 3.6. Append-only: a trigger rejects UPDATE, DELETE and TRUNCATE
    (docs/design.md decision 7) outside the audit writer's own functions (migration 0010).
    Rows are written only by the audit functions (``app.db.audit.record``), never by the ORM:
    ``db_user``, ``statement_id`` and ``row_hash`` are theirs (docs/security.md)."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    entity_type: Mapped[str] = mapped_column(String(100), nullable=False)
    entity_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    operation: Mapped[str] = mapped_column(String(50), nullable=False)
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_id: Mapped[str | None] = mapped_column(String(100))
    service_name: Mapped[str | None] = mapped_column(String(100))
    timestamp: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    db_user: Mapped[str | None] = mapped_column(String(63))
    statement_id: Mapped[int | None] = mapped_column(BigInteger)
    row_hash: Mapped[bytes | None] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("idx_audit_entity", "entity_type", "entity_id"),
        Index("idx_audit_operation", "operation", "timestamp"),
        Index("idx_audit_timestamp", text("timestamp DESC")),
        Index("idx_audit_correlation", "correlation_id"),
    )


class AuditSeal(Base):
    """One sealed statement of the audit chain of a day (migration 0010): ``seal`` =
    sha256(``prev_seal`` || seq as 8 bytes || ``digest``), ``digest`` = sha256 of the
    statement's row hashes in id order. Append-only."""

    __tablename__ = "audit_seals"

    day: Mapped[date] = mapped_column(Date, nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    statement_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    row_count: Mapped[int] = mapped_column(Integer, nullable=False)
    digest: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    prev_seal: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    seal: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    db_user: Mapped[str] = mapped_column(String(63), nullable=False)
    sealed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )

    __table_args__ = (
        PrimaryKeyConstraint("day", "seq"),
        UniqueConstraint("statement_id"),
    )


# Statement digests waiting for their seal: written by the statement trigger, chained and
# removed at commit by a deferred constraint trigger (empty outside a transaction).
audit_pending_seals = Table(
    "audit_pending_seals",
    Base.metadata,
    Column("statement_id", BigInteger, primary_key=True),
    Column("day", Date, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("digest", LargeBinary, nullable=False),
)
