"""Fixtures of the campaign-control tests: fast switch reads, the callback receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.callbacks.web import create_app
from app.config import get_settings
from app.db.session import session_scope
from app.models import Customer, CustomerOptOut, MonthlyQualification, Notification
from app.months import Month
from app.notifications.outbox import PrepareResult, prepare_month
from tests.support.callbacks import ReceiverThread, receiver_settings
from tests.support.factories import create_customer, create_qualification

OCT, NOV, DEC = date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)
TRUSTED = datetime(2100, 1, 1)  # last_verified after any update: the stored verdict holds


@pytest.fixture
def fast_switch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Senders read the switch at every check; paused batches look again after 0.2 s."""
    monkeypatch.setenv("SMS_PAUSE_CHECK_SECONDS", "0")
    monkeypatch.setenv("SMS_PAUSED_RECHECK_SECONDS", "0.2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def receiver(db: Engine) -> Iterator[ReceiverThread]:
    """The callback receiver with its production inbound handlers (opt-outs)."""
    server = ReceiverThread(create_app(receiver_settings())).start()
    yield server
    server.stop()


def customers(session: Session, *phones: str, months: tuple[date, ...] = (OCT,)) -> list[Customer]:
    """One customer per phone number, qualified for each of ``months``. Their stored phone
    verdict (valid mobile) is trusted, so the carrier's magic test numbers can be used."""
    made = []
    for phone in phones:
        customer = create_customer(session, phone_number=phone, last_verified=TRUSTED)
        for month in months:
            create_qualification(session, customer, qualification_month=month)
        made.append(customer)
    session.commit()
    return made


def qualify(session: Session, people: list[Customer], month: date) -> None:
    for customer in people:
        create_qualification(session, customer, qualification_month=month)
    session.commit()


def prepare(month: date) -> PrepareResult:
    with session_scope() as s:
        return prepare_month(s, Month.of(month))


def outbox_of(session: Session, month: date) -> dict[uuid.UUID, Notification]:
    """The month's outbox rows by customer id."""
    session.expire_all()
    found = session.scalars(
        select(Notification)
        .join(MonthlyQualification, MonthlyQualification.id == Notification.qualification_id)
        .where(MonthlyQualification.qualification_month == month)
    ).all()
    return {n.customer_id: n for n in found}


def choices(session: Session) -> list[CustomerOptOut]:
    session.expire_all()
    return list(session.scalars(select(CustomerOptOut).order_by(CustomerOptOut.recorded_at)))
