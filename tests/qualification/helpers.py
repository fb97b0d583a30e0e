"""Arrange helpers shared by the qualification and report tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.models import Customer, DailyBalanceCheck
from app.months import Month
from app.qualification.service import RunResult, run_month
from tests.support.factories import utcnow


def fill_month(
    session: Session,
    customer: Customer,
    month: str,
    *,
    balance: str = "20000.00",
    skip: Iterable[int] = (),
    balances: dict[int, str] | None = None,
    from_day: int = 1,
) -> int:
    """Insert one check per day of ``month`` (bulk), except the ``skip`` days."""
    m = Month.parse(month)
    skipped = set(skip)
    rows = []
    for day in range(from_day, m.days + 1):
        if day in skipped:
            continue
        amount = Decimal((balances or {}).get(day, balance))
        rows.append(
            {
                "customer_id": customer.id,
                "check_date": m.first + timedelta(days=day - 1),
                "balance": amount,
                "threshold": Decimal("15000.00"),
                "passes_threshold": amount >= Decimal("15000.00"),
                "check_timestamp": utcnow(),
                "data_quality_flag": "NEGATIVE_BALANCE" if amount < 0 else None,
                "correlation_id": uuid.uuid4(),
            }
        )
    if rows:
        session.execute(insert(DailyBalanceCheck), rows)
    return len(rows)


def day(month: str, n: int) -> date:
    return Month.parse(month).first + timedelta(days=n - 1)


def qualify(month: str, **options: Any) -> RunResult:
    """``run_month`` as the CLI calls it: production's session scope, the month parsed."""
    return run_month(session_scope, Month.parse(month), **options)
