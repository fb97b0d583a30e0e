"""Shared arrangements of the balance-check tests (customers, extracts, the simulator)."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import Customer
from tests.support.factories import create_customer

DAY = date(2026, 10, 14)


def make_customers(session: Session, n: int, **overrides: Any) -> list[Customer]:
    customers = [create_customer(session, **overrides) for _ in range(n)]
    session.commit()
    return customers


def write_extract(path: Path, rows: list[tuple[Any, ...]], header: str | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write((header or "account_number,balance,as_of_date") + "\n")
        csv.writer(handle).writerows(rows)
    return path


def checks_by_account(session: Session, day: date = DAY) -> dict[str, dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT c.account_number, d.balance, d.threshold, d.passes_threshold, "
            "d.data_quality_flag, d.correlation_id FROM daily_balance_checks d "
            "JOIN customers c ON c.id = d.customer_id WHERE d.check_date = :day"
        ),
        {"day": day},
    ).all()
    return {r.account_number: dict(r._mapping) for r in rows}
