from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    extract,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class DailyBalanceCheck(Base):
    """Seed section 3.2. One row per (customer, business day): docs/design.md decision 3.

    Negative balances are stored (decision 5: the seed's chk_balance_positive is not
    created); they fail the threshold and carry a data_quality_flag.
    """

    __tablename__ = "daily_balance_checks"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False
    )
    check_date: Mapped[date] = mapped_column(nullable=False)
    balance: Mapped[Decimal] = mapped_column(Numeric(18, 2), nullable=False)
    threshold: Mapped[Decimal] = mapped_column(
        Numeric(18, 2), nullable=False, server_default=text("15000")
    )
    passes_threshold: Mapped[bool] = mapped_column(Boolean, nullable=False)
    check_timestamp: Mapped[datetime] = mapped_column(nullable=False)
    data_quality_flag: Mapped[str | None] = mapped_column(String(100))
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = created_at()

    __table_args__ = (
        UniqueConstraint("customer_id", "check_date"),
        Index("idx_daily_checks_customer_date", "customer_id", "check_date"),
        Index("idx_daily_checks_date_status", "check_date", "passes_threshold"),
        Index(
            "idx_daily_checks_customer_month",
            "customer_id",
            extract("year", text("check_date")),
            extract("month", text("check_date")),
        ),
    )
