"""Fixtures and arrange helpers shared by the SMS / carrier / notifications tests."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.devtools.simulators.carrier import SimulatorThread
from app.models import Notification
from app.notifications.carrier import CarrierClient
from tests.support.factories import create_customer, create_qualification

ACCOUNT = "AC" + "1" * 32
TOKEN = "test-token"
SENDER = "+15005550006"
MONTH = date(2026, 10, 1)
ALWAYS_OPEN = "mon-sun 00:00-24:00"


def client_for(sim: SimulatorThread, timeout: float = 2.0) -> CarrierClient:
    return CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url, timeout=timeout)


def qualified_customers(session: Session, n: int, **overrides: object) -> list[str]:
    """``n`` qualified customers for MONTH; returns their phone numbers."""
    phones = []
    for _ in range(n):
        customer = create_customer(session, **overrides)
        create_qualification(session, customer, qualification_month=MONTH)
        phones.append(customer.phone_number or "")
    session.commit()
    return phones


def outbox(session: Session) -> list[Notification]:
    session.expire_all()
    return list(session.scalars(select(Notification).order_by(Notification.created_at)))
