from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, created_at, uuid_pk


class Customer(Base):
    """Seed section 3.1, plus the stored phone verdict used by set-based qualification."""

    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = uuid_pk()
    account_number: Mapped[str] = mapped_column(String(50), nullable=False, unique=True)
    first_name: Mapped[str] = mapped_column(String(100), nullable=False)
    last_name: Mapped[str] = mapped_column(String(100), nullable=False)
    email: Mapped[str | None] = mapped_column(String(255))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    account_type: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    is_active: Mapped[bool | None] = mapped_column(Boolean, server_default=text("true"))
    last_verified: Mapped[datetime | None] = mapped_column()

    # Not in the seed: the phone number's verdict (app.models.enums.PhoneStatus), computed
    # in bulk with `phonenumbers` whenever the number is written, so qualification can be
    # one SQL statement.
    phone_status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=text("'MISSING'")
    )
    phone_is_valid_mobile: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default=text("false")
    )
    anonymised_at: Mapped[datetime | None] = mapped_column()
    # Not in the seed: a phone number or email address that is not valid, as the file gave
    # it (phone_number and email hold only valid values), so an operator can correct it.
    phone_raw: Mapped[str | None] = mapped_column(String(50))
    email_raw: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("idx_customers_active", "is_active"),
        Index("idx_customers_phone", "phone_number"),
        Index("idx_customers_account", "account_number"),
    )
