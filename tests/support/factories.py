"""Keyword-argument factories: ``create_customer(session, phone_number=...)``, ...

Each flushes (so ids and server defaults are there) and leaves committing to the test.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.models import (
    Customer,
    DailyBalanceCheck,
    DeliveryStatus,
    MonthlyQualification,
    Notification,
)

_seq = itertools.count(1)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create_customer(session: Session, **overrides: Any) -> Customer:
    n = next(_seq)
    values: dict[str, Any] = {
        "account_number": f"ACC{n:08d}",
        "first_name": "Dana",
        "last_name": "Levi",
        "email": f"dana{n}@example.com",
        "phone_number": f"+972507{n:06d}",  # valid Israeli mobiles
        "account_type": "PREMIUM",
        "is_active": True,
        "phone_status": "MOBILE",
        "phone_is_valid_mobile": True,
    }
    values.update(overrides)
    customer = Customer(**values)
    session.add(customer)
    session.flush()
    return customer


def create_check(session: Session, customer: Customer, **overrides: Any) -> DailyBalanceCheck:
    balance = Decimal(str(overrides.pop("balance", "20000.00")))
    threshold = Decimal(str(overrides.pop("threshold", "15000.00")))
    values: dict[str, Any] = {
        "customer_id": customer.id,
        "check_date": date(2026, 10, 1),
        "balance": balance,
        "threshold": threshold,
        "passes_threshold": balance >= threshold,
        "check_timestamp": utcnow(),
        "correlation_id": uuid.uuid4(),
    }
    values.update(overrides)
    check = DailyBalanceCheck(**values)
    session.add(check)
    session.flush()
    return check


def create_qualification(
    session: Session, customer: Customer, **overrides: Any
) -> MonthlyQualification:
    values: dict[str, Any] = {
        "customer_id": customer.id,
        "qualification_month": date(2026, 10, 1),
        "qualified": True,
        "qualifying_days": 31,
        "total_days_in_month": 31,
        "phone_number_validated": True,
        "calculated_at": utcnow(),
    }
    values.update(overrides)
    qualification = MonthlyQualification(**values)
    session.add(qualification)
    session.flush()
    return qualification


def create_notification(
    session: Session, qualification: MonthlyQualification, **overrides: Any
) -> Notification:
    customer = session.get(Customer, qualification.customer_id)
    assert customer is not None
    values: dict[str, Any] = {
        "customer_id": customer.id,
        "qualification_id": qualification.id,
        "phone_number": customer.phone_number or "+972507654321",
        "sms_content": "Shalom",
        "character_count": 6,
        "segment_count": 1,
        "submission_status": "Queued",
    }
    values.update(overrides)
    notification = Notification(**values)
    session.add(notification)
    session.flush()
    return notification


def create_delivery_status(
    session: Session, notification: Notification, **overrides: Any
) -> DeliveryStatus:
    values: dict[str, Any] = {
        "notification_id": notification.id,
        "status": "Pending",
        "last_check_timestamp": utcnow(),
    }
    values.update(overrides)
    status = DeliveryStatus(**values)
    session.add(status)
    session.flush()
    return status
