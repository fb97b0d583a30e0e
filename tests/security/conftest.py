"""Fixtures of the security tests: audited rows, superuser tampering, per-service roles.

Tampering "as a superuser" uses ``session_replication_role = replica`` (superuser only),
which keeps every ordinary trigger out: what someone with the server's keys could do.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.support.factories import create_check, create_customer


@pytest.fixture
def audited(session: Session) -> Session:
    """Three committed statements: a customer, two checks (one statement), an update."""
    customer = create_customer(session)
    session.commit()
    create_check(session, customer)
    session.execute(
        text(
            "INSERT INTO daily_balance_checks (customer_id, check_date, balance,"
            " passes_threshold, check_timestamp) VALUES (:c, '2026-10-02', 1, false, now()),"
            " (:c, '2026-10-03', 2, false, now())"
        ),
        {"c": customer.id},
    )
    session.commit()
    session.execute(text("UPDATE daily_balance_checks SET balance = balance + 1"))
    session.commit()
    return session


def tamper(engine: Engine, sql: str, **params: object) -> None:
    """Run ``sql`` as the superuser with every trigger out of the way."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)


@pytest.fixture
def superuser(db: Engine) -> Iterator[Engine]:
    yield db
