"""Callbacks settle ambiguous sends (issue 19, point 3), sender and simulator wired to a real
receiver: every create names its notification and carries a ValidityPeriod; a callback
that settles a row before the sender records it is the sender's outcome, not a conflict;
the reconciler waits out the list lag instead of sending twice, and takes a stored
callback as evidence."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.callbacks.urls import status_callback_url
from app.config import get_settings
from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import CallbackReceipt, DeliveryStatus, Notification, SystemEvent
from app.months import Month
from app.notifications.carrier import CarrierClient, CarrierMessage
from app.notifications.outbox import prepare_month
from app.notifications.reconcile import reconcile_outbox
from app.notifications.sending import Sender, utcnow
from tests.support.callbacks import Wired
from tests.support.carrier import ACCOUNT, MONTH, SENDER, TOKEN, outbox, qualified_customers
from tests.support.factories import create_customer, create_notification, create_qualification


def _client(sim: SimulatorThread, timeout: float = 2.0) -> CarrierClient:
    return CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url, timeout=timeout)


def _batch() -> uuid.UUID:
    with session_scope() as s:
        [batch] = prepare_month(s, Month.of(MONTH)).batches
    return batch


def _conflicts(session: Session) -> int:
    session.expire_all()
    query = select(SystemEvent).where(SystemEvent.event_type == "notification_record_conflict")
    return len(list(session.scalars(query)))


def _wait_for(check: Any, seconds: float = 10.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_every_create_names_its_notification_and_carries_a_validity_period(
    session: Session, sender_env: Wired
) -> None:
    sim, _, public = sender_env
    qualified_customers(session, 3)
    assert Sender(_client(sim)).send_batch(session_scope, _batch()).submitted == 3
    rows = outbox(session)
    for row in rows:
        assert row.carrier_reference_id is not None
        message = sim.state.messages[row.carrier_reference_id]
        assert message.status_callback == status_callback_url(public, row.id)
        assert message.validity_period == get_settings().sms_validity_period_seconds == 3600
    # The callbacks alone bring every message to its final status.
    _wait_for(lambda: _delivered(session) == 3)
    assert _conflicts(session) == 0


def _delivered(session: Session) -> int:
    session.expire_all()
    query = select(func.count()).where(
        DeliveryStatus.final_status.is_(True), DeliveryStatus.status == "Delivered"
    )
    return int(session.scalar(query) or 0)


class _AnswersAfterTheCallback(CarrierClient):
    """The carrier's answer (or its timeout) reaches the sender only after the message's
    first status callback settled the row: the order a slow network produces."""

    def send(self, to: str, body: str, **kwargs: Any) -> CarrierMessage:
        try:
            return super().send(to, body, **kwargs)
        finally:
            _wait_for(lambda: _settled(to))


def _settled(phone: str) -> bool:
    with session_scope() as s:
        status = s.scalar(
            select(Notification.submission_status).where(Notification.phone_number == phone)
        )
    return status == "Submitted"


@pytest.mark.parametrize("answer", ["accepted", "timed_out"])
def test_a_callback_that_settles_first_is_the_senders_outcome(
    session: Session, sender_env: Wired, answer: str
) -> None:
    sim = sender_env[0]
    [phone] = qualified_customers(session, 1)
    if answer == "timed_out":  # stored, answered after the client gave up; not yet listed
        sim.state.config.update({"accept_timeout_rate": 1.0, "accept_timeout_delay": 1.5,
                                 "list_lag": 60.0})  # fmt: skip
    client = _AnswersAfterTheCallback(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url,
                                      timeout=0.5)  # fmt: skip
    outcome = Sender(client).send_batch(session_scope, _batch())
    [sid] = list(sim.state.messages)
    [row] = outbox(session)
    assert (row.submission_status, row.carrier_reference_id) == ("Submitted", sid)
    assert outcome.conflicts == 0 and _conflicts(session) == 0
    assert (outcome.submitted, outcome.unresolved) == ((1, 0) if answer == "accepted" else (0, 1))
    assert sim.state.per_recipient() == {phone: 1}


def test_the_reconciler_waits_out_the_list_lag_instead_of_sending_twice(
    session: Session, sender_env: Wired
) -> None:
    """Stored, answered 500, no callback (lost, or the receiver down), not listed yet: the
    old rule (not found after SMS_RECONCILE_SENDING_AFTER_SECONDS -> queue again) would
    have sent a second SMS here."""
    sim = sender_env[0]
    [phone] = qualified_customers(session, 1)
    sim.state.config.update({"store_then_500_rate": 1.0, "list_lag": 3600.0,
                             "callback_loss": 1.0})  # fmt: skip
    client = _client(sim)
    assert Sender(client).send_batch(session_scope, _batch()).unresolved == 1
    [row] = outbox(session)
    assert row.submission_status == "Sending" and row.claimed_at is not None
    lookup = row.claimed_at + timedelta(seconds=get_settings().sms_reconcile_sending_after_seconds)
    result = reconcile_outbox(session_scope, client, now=lookup + timedelta(seconds=1))
    assert (result.found_at_carrier, result.requeued, result.waiting) == (0, 0, 1)
    assert outbox(session)[0].submission_status == "Sending"
    for message in sim.state.messages.values():
        message.listed_after = 0.0  # the list catches up
    result = reconcile_outbox(session_scope, client, now=lookup + timedelta(seconds=2))
    assert (result.found_at_carrier, result.requeued) == (1, 0)
    [sid] = list(sim.state.messages)
    [row] = outbox(session)
    assert (row.submission_status, row.carrier_reference_id) == ("Submitted", sid)
    assert sim.state.per_recipient() == {phone: 1}


def test_a_stored_callback_settles_a_row_the_carrier_cannot_be_asked_about(
    session: Session, sender_env: Wired
) -> None:
    """A callback was stored but not applied (its apply failed): the reconciler takes the
    receipt as evidence and never needs the carrier (down here)."""
    sim = sender_env[0]
    customer = create_customer(session)
    q = create_qualification(session, customer, qualification_month=MONTH)
    claimed = utcnow() - timedelta(minutes=10)
    n = create_notification(session, q, submission_status="Sending", claimed_at=claimed)
    sid = "SM" + "d" * 32
    session.add(CallbackReceipt(kind="status", notification_id=n.id, message_sid=sid,
                                message_status="sent", outcome="error", params={}))  # fmt: skip
    session.commit()
    sim.state.config.update({"outage": True})
    result = reconcile_outbox(session_scope, _client(sim))
    assert (result.found_by_callback, result.unresolved, result.requeued) == (1, 0, 0)
    [row] = outbox(session)
    assert (row.submission_status, row.carrier_reference_id) == ("Submitted", sid)
