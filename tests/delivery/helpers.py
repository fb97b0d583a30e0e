"""Helpers of the delivery-tracking tests: real
messages on the carrier simulator, matching Submitted notifications in the database,
and a poller with a movable clock."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.delivery.polling import DeliveryPoller, utcnow
from app.devtools.simulators.carrier import SimulatorThread
from app.models import DeliveryStatus, SystemEvent
from tests.support.carrier import MONTH, client_for
from tests.support.factories import create_customer, create_notification, create_qualification


class Clock:
    """A clock the test moves forward (the poller's idea of now)."""

    def __init__(self) -> None:
        self.now = utcnow()
        # The day the test's messages were sent (DateSent, UTC): the day to poll. Not
        # ``now.date()`` after advancing, which is tomorrow when a test runs shortly
        # before midnight UTC.
        self.sent_day = self.now.date()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def submitted(session: Session, sim: SimulatorThread, n: int, to: str | None = None) -> list[Any]:
    """``n`` messages created on the simulator through the real SDK, and their rows."""
    client = client_for(sim)
    rows = []
    for _ in range(n):
        customer = create_customer(session, **({"phone_number": to} if to else {}))
        qualification = create_qualification(session, customer, qualification_month=MONTH)
        message = client.send(customer.phone_number or "", "Shalom")
        rows.append(
            create_notification(
                session,
                qualification,
                carrier_reference_id=message.sid,
                submission_status="Submitted",
                submission_timestamp=utcnow(),
            )
        )
    session.commit()
    return rows


def poller(sim: SimulatorThread, clock: Clock, limiter: Any = None) -> DeliveryPoller:
    return DeliveryPoller(client_for(sim), limiter, get_settings(), clock=clock)


def history(session: Session, notification_id: uuid.UUID) -> list[DeliveryStatus]:
    session.expire_all()
    return list(
        session.scalars(
            select(DeliveryStatus)
            .where(DeliveryStatus.notification_id == notification_id)
            .order_by(DeliveryStatus.created_at, DeliveryStatus.id)
        )
    )


def events(session: Session, event_type: str) -> list[SystemEvent]:
    session.expire_all()
    return list(session.scalars(select(SystemEvent).where(SystemEvent.event_type == event_type)))
