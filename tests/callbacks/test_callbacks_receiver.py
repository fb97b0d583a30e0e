"""The receiver's gate over real HTTP: signatures, limits, encodings, health, inbound."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from alembic.script import ScriptDirectory
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from app.callbacks.inbound import InboundMessage
from app.callbacks.web import create_app, schema_head
from app.cli.db import alembic_config
from app.config import ConfigError
from app.models import CallbackReceipt
from tests.support.callbacks import (
    PUBLIC,
    ReceiverThread,
    post_signed,
    receiver_settings,
    status_params,
)
from tests.support.carrier import MONTH, TOKEN
from tests.support.factories import create_customer, create_notification, create_qualification

SID = "SM" + "a" * 32


def _counted(endpoint: str, answer: str) -> float:
    value = REGISTRY.get_sample_value(
        "pn_callback_requests_total", {"endpoint": endpoint, "answer": answer}
    )
    return value or 0.0


def _receipts(session: Session) -> list[CallbackReceipt]:
    session.expire_all()
    return list(session.scalars(select(CallbackReceipt).order_by(CallbackReceipt.received_at)))


def _submitted(session: Session, sid: str = SID) -> uuid.UUID:
    customer = create_customer(session)
    q = create_qualification(session, customer, qualification_month=MONTH)
    n = create_notification(session, q, submission_status="Submitted", carrier_reference_id=sid)
    session.commit()
    return n.id


def test_signed_status_callback_is_stored_without_personal_data(
    session: Session, receiver: ReceiverThread
) -> None:
    nid = _submitted(session)
    path = f"/v1/callbacks/status/{nid}"
    params = status_params(SID, "delivered", NumSegments="2", Price="-0.01500",
                           PriceUnit="USD", Body="secret text")  # fmt: skip
    r = post_signed(receiver.base_url, path, params)
    assert r.status_code == 204 and r.content == b""
    [receipt] = _receipts(session)
    assert (receipt.kind, receipt.notification_id, receipt.message_sid) == ("status", nid, SID)
    assert (receipt.message_status, receipt.error_code, receipt.num_segments) == (
        "delivered", None, 2,
    )  # fmt: skip
    assert (receipt.price, receipt.price_unit, receipt.outcome) == ("-0.01500", "USD", "applied")
    assert "To" not in receipt.params and "Body" not in receipt.params
    assert receipt.params["MessageStatus"] == "delivered"


@pytest.mark.parametrize(
    "tamper",
    [
        "signed_for_the_internal_url",
        "changed_param",
        "other_token",
        "no_signature",
    ],
)
def test_bad_signature_is_403_counted_and_not_stored(
    session: Session, receiver: ReceiverThread, tamper: str
) -> None:
    nid = _submitted(session)
    path = f"/v1/callbacks/status/{nid}"
    params = status_params(SID, "delivered")
    before = _counted("status", "forbidden")
    kwargs: dict[str, Any] = {
        "signed_for_the_internal_url": {"public": receiver.base_url},
        "other_token": {"token": "not-the-token"},
        "no_signature": {"signature": ""},
    }.get(tamper, {})
    if tamper == "changed_param":
        sig = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
        params = {**params, "MessageStatus": "failed"}
        kwargs = {"signature": sig}
    r = post_signed(receiver.base_url, path, params, **kwargs)
    assert r.status_code == 403
    assert _counted("status", "forbidden") == before + 1
    assert _receipts(session) == []


def test_size_limit_413_also_without_content_length(db: Engine) -> None:
    server = ReceiverThread(create_app(receiver_settings(callback_max_body_bytes=1024))).start()
    try:
        big = status_params(SID, "sent", Padding="x" * 2000)
        assert post_signed(server.base_url, "/v1/callbacks/status", big).status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(20):
                yield b"Padding=" + b"x" * 100 + b"&"

        chunked = requests.post(server.base_url + "/v1/callbacks/status", data=chunks(),
                                headers={"Content-Type": "application/x-www-form-urlencoded"},
                                timeout=5)  # fmt: skip
        assert chunked.status_code == 413
    finally:
        server.stop()


def test_rate_limit_429(db: Engine) -> None:
    server = ReceiverThread(create_app(receiver_settings(callback_rate_per_second=1))).start()
    try:
        answers = [
            post_signed(server.base_url, "/v1/callbacks/status", status_params(SID, "sent"))
            for _ in range(4)
        ]
        codes = [a.status_code for a in answers]
        assert codes[:2] == [204, 204] and 429 in codes[2:]
        assert [a for a in answers if a.status_code == 429][0].headers["Retry-After"] == "1"
    finally:
        server.stop()


def test_wrong_encoding_and_missing_fields_are_4xx(receiver: ReceiverThread) -> None:
    url = receiver.base_url + "/v1/callbacks/status"
    assert requests.post(url, json={"MessageSid": SID}, timeout=5).status_code == 415
    assert post_signed(receiver.base_url, "/v1/callbacks/status", {"x": "y"}).status_code == 400
    bad_id = post_signed(receiver.base_url, "/v1/callbacks/status/not-a-uuid", {"x": "y"})
    assert bad_id.status_code == 404
    assert requests.get(url, timeout=5).status_code == 405


def test_health_and_readiness(receiver: ReceiverThread) -> None:
    assert requests.get(receiver.base_url + "/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(receiver.base_url + "/readyz", timeout=5)
    # The newest migration's revision (not a literal: every new migration would break it).
    head = ScriptDirectory.from_config(alembic_config("postgresql://unused/x")).get_current_head()
    assert ready.status_code == 200 and ready.json()["schema"] == schema_head() == head


def test_not_ready_when_the_database_is_down(db: Engine) -> None:
    @contextmanager
    def broken() -> Iterator[Session]:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        yield  # pragma: no cover

    server = ReceiverThread(create_app(receiver_settings(), scope=broken)).start()
    try:
        assert requests.get(server.base_url + "/healthz", timeout=5).status_code == 200
        assert requests.get(server.base_url + "/readyz", timeout=5).status_code == 503
        r = post_signed(server.base_url, "/v1/callbacks/status", status_params(SID, "sent"))
        assert r.status_code == 503  # the carrier is told: not stored
    finally:
        server.stop()


def test_refuses_to_start_without_public_url_or_token() -> None:
    with pytest.raises(ConfigError):
        create_app(receiver_settings(callback_public_url=None))
    with pytest.raises(ConfigError):
        create_app(receiver_settings(twilio_auth_token=None))


def test_inbound_keeps_customer_and_keyword_never_text_or_number(
    session: Session, db: Engine
) -> None:
    seen: list[InboundMessage] = []

    def handler(s: Session, m: InboundMessage) -> str | None:
        seen.append(m)
        return None

    customer = create_customer(session, phone_number="+972521112233")
    session.commit()
    server = ReceiverThread(create_app(receiver_settings(), inbound_handlers=[handler])).start()
    try:
        for body in (" stop ", "Please call me at 0501234567"):
            params = {"MessageSid": "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "1" * 32,
                      "From": "+972521112233", "To": "+15005550006", "Body": body,
                      "FromCity": "Haifa", "NumMedia": "0"}  # fmt: skip
            r = post_signed(server.base_url, "/v1/callbacks/inbound", params)
            assert r.status_code == 200 and "<Response>" in r.text
    finally:
        server.stop()
    receipts = _receipts(session)
    assert [(r.kind, r.customer_id, r.keyword, r.outcome) for r in receipts] == [
        ("inbound", customer.id, "STOP", "recorded"),
        ("inbound", customer.id, None, "recorded"),
    ]
    for r in receipts:
        assert set(r.params) == {"MessageSid", "AccountSid", "To", "NumMedia"}
    assert [(m.customer_ids, m.keyword) for m in seen] == [([customer.id], "STOP"),
                                                           ([customer.id], None)]  # fmt: skip


def test_receipts_are_append_only(session: Session, receiver: ReceiverThread) -> None:
    post_signed(receiver.base_url, "/v1/callbacks/status", status_params(SID, "sent"))
    [receipt] = _receipts(session)
    assert receipt.outcome == "unknown_notification"
    receipt.outcome = "edited"
    with pytest.raises(Exception, match="append-only"):
        session.commit()
    session.rollback()
