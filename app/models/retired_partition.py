from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, Identity, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base


class RetiredPartition(Base):
    """One monthly partition retired to cold storage and dropped (migration 0011): written
    only by the owner's ``pn_retire_partition()``, append-only. ``audit verify`` reads the
    audit_log months from here (their days are checked by their seals and cold files)."""

    __tablename__ = "pn_retired_partitions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(63), nullable=False)
    month: Mapped[date] = mapped_column(Date, nullable=False)
    row_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    cold_set: Mapped[str | None] = mapped_column(Text)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    db_user: Mapped[str] = mapped_column(String(63), nullable=False)
    retired_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )

    __table_args__ = (Index("idx_retired_partitions_table_month", "table_name", "month"),)
