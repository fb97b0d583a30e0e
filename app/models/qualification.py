from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class MonthlyQualification(Base):
    """Seed section 3.3. ``qualification_month`` is the month's first day."""

    __tablename__ = "monthly_qualifications"

    id: Mapped[uuid.UUID] = uuid_pk(time_ordered=True)
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id"), nullable=False
    )
    qualification_month: Mapped[date] = mapped_column(nullable=False)
    qualified: Mapped[bool] = mapped_column(Boolean, nullable=False)
    qualifying_days: Mapped[int | None] = mapped_column()
    total_days_in_month: Mapped[int | None] = mapped_column()
    disqualification_reason: Mapped[str | None] = mapped_column(String(255))
    phone_number_validated: Mapped[bool | None] = mapped_column(
        Boolean, server_default=text("false")
    )
    calculated_at: Mapped[datetime] = mapped_column(nullable=False)
    created_at: Mapped[datetime] = created_at()
    # Not in the seed: the qualification run that wrote the row (audit correlation).
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    __table_args__ = (
        UniqueConstraint("customer_id", "qualification_month"),
        CheckConstraint(
            "qualified = FALSE OR phone_number_validated = TRUE", name="chk_qualified_has_phone"
        ),
        Index("idx_monthly_qual_customer_month", "customer_id", "qualification_month"),
        Index("idx_monthly_qual_month_status", "qualification_month", "qualified"),
        Index("idx_monthly_qual_qualified", "qualified", "qualification_month"),
    )
