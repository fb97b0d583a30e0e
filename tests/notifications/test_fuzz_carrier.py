"""Bad carrier answers, generated (hypothesis), through the real twilio SDK.

A loopback HTTP server answers each call with a generated status and body (malformed
JSON, wrong types, unknown statuses and error codes). Properties: the client returns a
message or raises one of its typed errors (permanent / transient / ambiguous), never
anything else, so a send batch or a poll round is never crashed by the carrier's
answer; a create whose answer is unreadable is treated as ambiguous (the carrier may
have accepted it), never as "not sent". The delivery mapping takes any report.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.delivery.mapping import map_report
from app.models.enums import DeliveryState
from app.notifications.carrier import (
    AmbiguousCarrierError,
    CarrierClient,
    CarrierError,
    CarrierMessage,
    PermanentCarrierError,
)

ACCOUNT, TOKEN = "AC" + "f" * 32, "fuzz-token"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples every run: CI stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class _Answer:
    status = 200
    body = b"{}"


class _Handler(BaseHTTPRequestHandler):
    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(_Answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_Answer.body)))
        self.end_headers()
        self.wfile.write(_Answer.body)

    do_GET = do_POST = _reply

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                        st.text(max_size=20))  # fmt: skip
message_json = st.fixed_dictionaries(
    {"sid": st.one_of(st.just("SM" + "a" * 32), json_scalar),
     "to": st.one_of(st.just("+972521234567"), json_scalar),
     "body": json_scalar,
     "status": st.one_of(st.sampled_from(["queued", "sent", "delivered", "undelivered", "failed",
                                          "canceled", "read", "accepted", "weird", ""]),
                         json_scalar),
     "num_segments": st.one_of(st.sampled_from(["1", "2", "x", "", "-1"]), json_scalar),
     "error_code": st.one_of(st.sampled_from([None, 30003, "30005", "abc", 99999]), json_scalar),
     "error_message": json_scalar,
     "date_created": st.one_of(st.just("Tue, 24 Nov 2026 10:00:00 +0000"), json_scalar),
     "date_sent": json_scalar, "date_updated": json_scalar},
)  # fmt: skip
error_json = st.fixed_dictionaries(
    {"code": st.one_of(st.sampled_from([20429, 21211, 21610, 21611, 30001, 1]), json_scalar),
     "message": json_scalar, "status": json_scalar, "more_info": json_scalar},
)  # fmt: skip
body = st.one_of(
    message_json.map(lambda d: json.dumps(d).encode()),
    error_json.map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=60),
    st.sampled_from([b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"messages": 7}', b"<html>"]),
)
status = st.sampled_from([200, 201, 204, 301, 400, 401, 404, 409, 429, 500, 502, 503, 999])


def _client(base: str) -> CarrierClient:
    return CarrierClient(ACCOUNT, TOKEN, sender="+15005550006", base_url=base, timeout=2)


@FUZZ
@given(status, body)
def test_create_returns_a_message_or_a_typed_error(server: str, code: int, payload: bytes) -> None:
    _Answer.status, _Answer.body = code, payload
    try:
        message = _client(server).send("+972521234567", "hello")
    except PermanentCarrierError:
        assert code >= 400  # "never sent": only on a refusal the carrier spelled out
    except CarrierError as exc:
        assert str(exc)
    else:
        assert 200 <= code < 300 and isinstance(message, CarrierMessage)


@FUZZ
@given(message_json)
def test_an_unreadable_accepted_create_is_ambiguous(server: str, fields: dict[str, Any]) -> None:
    """201 with a body the client cannot use: maybe sent, so never retried blindly."""
    _Answer.status, _Answer.body = 201, json.dumps(fields).encode()[:-1]  # truncated JSON
    with pytest.raises(AmbiguousCarrierError):
        _client(server).send("+972521234567", "hello")


@FUZZ
@given(status, body)
def test_fetch_and_list_return_messages_or_a_typed_error(
    server: str, code: int, payload: bytes
) -> None:
    _Answer.status, _Answer.body = code, payload
    client = _client(server)
    calls = (
        lambda: [client.fetch("SM" + "a" * 32)],
        lambda: list(client.list_messages(to="+972521234567", page_size=5, limit=5)),
    )
    for call in calls:
        try:
            got = call()
        except CarrierError as exc:
            assert str(exc)
        else:
            assert all(isinstance(m, CarrierMessage) for m in got)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    st.one_of(st.text(max_size=300), st.sampled_from(["delivered", "DELIVERED ", "sent"])),
    st.one_of(st.none(), st.integers()),
    st.one_of(st.none(), st.text(max_size=400)),
)
def test_any_delivery_report_maps_to_a_bounded_row(
    word: str, code: int | None, message: str | None
) -> None:
    mapped = map_report(word, code, message)
    assert isinstance(mapped.status, DeliveryState)
    assert len(mapped.carrier_status) <= 50
    assert mapped.failure_reason is None or len(mapped.failure_reason) <= 255
    if not mapped.known:  # an unknown word is kept and never taken as final
        assert mapped.status is DeliveryState.UNKNOWN and not mapped.final
