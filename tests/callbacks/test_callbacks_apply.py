"""Applying status callbacks (real HTTP, real PostgreSQL): forward only, first final wins,
duplicates are no-ops, and the first callback of an unsettled send settles it."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.callbacks.urls import status_callback_url
from app.callbacks.web import create_app
from app.devtools.simulators.carrier import SimConfig, SimulatorThread
from app.models import CallbackReceipt, DeliveryStatus, Notification, SystemEvent
from app.notifications.carrier import AmbiguousCarrierError, CarrierClient
from tests.support.callbacks import ReceiverThread, post_signed, receiver_settings, status_params
from tests.support.carrier import ACCOUNT, MONTH, SENDER, TOKEN
from tests.support.factories import create_customer, create_notification, create_qualification

SID = "SM" + "b" * 32


def _notification(session: Session, **overrides: object) -> uuid.UUID:
    customer = create_customer(session)
    q = create_qualification(session, customer, qualification_month=MONTH)
    n = create_notification(session, q, **overrides)
    session.commit()
    return n.id


def _send(
    receiver: ReceiverThread, nid: uuid.UUID, status: str, sid: str = SID, **extra: str
) -> None:
    r = post_signed(receiver.base_url, f"/v1/callbacks/status/{nid}",
                    status_params(sid, status, **extra))  # fmt: skip
    assert r.status_code == 204, r.text


def _history(session: Session, nid: uuid.UUID) -> list[tuple[str, str | None, bool | None]]:
    session.expire_all()
    rows = session.scalars(
        select(DeliveryStatus)
        .where(DeliveryStatus.notification_id == nid)
        .order_by(DeliveryStatus.created_at, DeliveryStatus.id)
    )
    return [(r.status, r.carrier_status, r.final_status) for r in rows]


def _outcomes(session: Session) -> list[str]:
    session.expire_all()
    return list(
        session.scalars(select(CallbackReceipt.outcome).order_by(CallbackReceipt.received_at))
    )


def _events(session: Session, event_type: str) -> int:
    session.expire_all()
    events = session.scalars(select(SystemEvent).where(SystemEvent.event_type == event_type))
    return len(list(events))


def test_forward_only_duplicates_and_first_final(
    session: Session, receiver: ReceiverThread
) -> None:
    nid = _notification(session, submission_status="Submitted", carrier_reference_id=SID)
    for status in ("sending", "sent", "sent", "queued", "delivered", "sent", "delivered"):
        _send(receiver, nid, status)
    _send(receiver, nid, "undelivered", ErrorCode="30003")
    _send(receiver, nid, "undelivered", ErrorCode="30003")
    assert _history(session, nid) == [
        ("Pending", "sending", False),
        ("Pending", "sent", False),
        ("Delivered", "delivered", True),
    ]
    assert _outcomes(session) == [
        "applied", "applied", "duplicate", "stale", "applied", "after_final", "after_final",
        "after_final", "after_final",
    ]  # fmt: skip
    assert _events(session, "delivery_contradicting_report") == 1  # raised once


def test_reordered_final_first_wins(session: Session, receiver: ReceiverThread) -> None:
    nid = _notification(session, submission_status="Submitted", carrier_reference_id=SID)
    _send(receiver, nid, "undelivered", ErrorCode="30005")
    _send(receiver, nid, "sent")
    session.expire_all()
    [row] = session.scalars(select(DeliveryStatus).where(DeliveryStatus.notification_id == nid))
    assert (row.status, row.status_code, row.final_status) == ("Undeliverable", "30005", True)
    assert row.failure_reason is not None and row.failure_reason.startswith("30005")
    assert _outcomes(session) == ["applied", "after_final"]


@pytest.mark.parametrize("state", ["Sending", "Queued"])
def test_first_callback_settles_an_unsettled_send(
    session: Session, receiver: ReceiverThread, state: str
) -> None:
    nid = _notification(session, submission_status=state, error_code="http_500",
                        status_reason="AMBIGUOUS")  # fmt: skip
    _send(receiver, nid, "sent")
    _send(receiver, nid, "delivered")
    session.expire_all()
    n = session.get(Notification, nid)
    assert n is not None
    assert (n.submission_status, n.carrier_reference_id, n.error_code, n.status_reason) == (
        "Submitted", SID, None, None,
    )  # fmt: skip
    assert n.submission_timestamp is not None
    assert _outcomes(session) == ["settled", "applied"]
    assert _history(session, nid)[-1] == ("Delivered", "delivered", True)


def test_callbacks_that_must_not_apply(session: Session, receiver: ReceiverThread) -> None:
    other = _notification(session, submission_status="Submitted", carrier_reference_id=SID)
    failed = _notification(session, submission_status="Failed", error_code="21610")
    _send(receiver, other, "delivered", sid="SM" + "c" * 32)  # a second message for it
    _send(receiver, failed, "delivered")
    _send(receiver, uuid.uuid4(), "delivered")
    _send(receiver, other, "partially_delivered")
    assert _outcomes(session) == [
        "other_message", "not_sent", "unknown_notification", "unknown_status",
    ]  # fmt: skip
    assert _history(session, other) == [] and _history(session, failed) == []
    assert _events(session, "callback_for_other_message") == 1
    assert _events(session, "delivery_unknown_carrier_status") == 1


def test_id_less_path_finds_the_notification_by_sid(
    session: Session, receiver: ReceiverThread
) -> None:
    nid = _notification(session, submission_status="Submitted", carrier_reference_id=SID)
    r = post_signed(receiver.base_url, "/v1/callbacks/status", status_params(SID, "delivered"))
    assert r.status_code == 204
    assert _history(session, nid) == [("Delivered", "delivered", True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def wired(db: Engine) -> Iterator[tuple[SimulatorThread, ReceiverThread, str]]:
    """The simulator calling the receiver; the public URL is the receiver's own here."""
    port = _free_port()
    public = f"http://127.0.0.1:{port}"
    app = create_app(receiver_settings(callback_public_url=public))
    receiver = ReceiverThread(app, port=port).start()
    sim = SimulatorThread(SimConfig(account_sid=ACCOUNT, auth_token=TOKEN, sent_after=0.2,
                                    delivered_after=0.5, callback_duplicate=0.5,
                                    callback_delay=0.3, seed=19)).start()  # fmt: skip
    yield sim, receiver, public
    sim.stop()
    receiver.stop()


def test_accepted_then_timed_out_send_is_settled_by_its_callbacks(
    session: Session, wired: tuple[SimulatorThread, ReceiverThread, str]
) -> None:
    sim, _, public = wired
    nid = _notification(session, submission_status="Sending")
    sim.state.config.update({"accept_timeout_rate": 1.0, "accept_timeout_delay": 1.0,
                             "list_lag": 30.0})  # fmt: skip
    client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url, timeout=0.3)
    with pytest.raises(AmbiguousCarrierError):
        client.send("+972501234567", "Shalom", status_callback=status_callback_url(public, nid),
                    validity_period=600)  # fmt: skip
    [sid] = list(sim.state.messages)
    end = time.monotonic() + 10
    while _history(session, nid)[-1:] != [("Delivered", "delivered", True)]:
        assert time.monotonic() < end, _outcomes(session)
        time.sleep(0.05)
    n = session.get(Notification, nid)
    assert n is not None and (n.submission_status, n.carrier_reference_id) == ("Submitted", sid)
    statuses = [s for s, _, _ in _history(session, nid)]
    assert statuses[-1] == "Delivered" and statuses.count("Delivered") == 1
    assert "settled" in _outcomes(session)
