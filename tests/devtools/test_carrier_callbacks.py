"""The simulator's status callbacks, checked with the twilio SDK's own RequestValidator."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from app.devtools.simulators.carrier import SimulatorThread, twilio_signature
from tests.support.carrier import ACCOUNT, SENDER, TOKEN, client_for

TO = "+972501234567"


@dataclass
class Received:
    url: str
    params: dict[str, str]
    signature: str


class Receiver:
    """A plain HTTP server on loopback that keeps every POST it gets."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                params = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                url = f"http://127.0.0.1:{outer.port}{self.path}"
                sig = self.headers.get("X-Twilio-Signature", "")
                outer.received.append(Received(url, params, sig))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        end = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < end:
            time.sleep(0.02)
        return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def test_signature_matches_twilios_validator() -> None:
    url = "https://notify.example.com/v1/callbacks/status/abc?x=1"
    params = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "sent", "To": "+972501234567"}
    sig = twilio_signature(TOKEN, url, params)
    validator = RequestValidator(TOKEN)
    assert validator.validate(url, params, sig)
    assert not validator.validate(url, {**params, "MessageStatus": "delivered"}, sig)
    assert not RequestValidator("other").validate(url, params, sig)


def test_every_status_change_after_creation_is_posted_signed(
    carrier_sim: SimulatorThread, receiver: Receiver
) -> None:
    carrier_sim.state.config.update({"sent_after": 0.2, "delivered_after": 0.4})
    client = client_for(carrier_sim)
    url = receiver.url("/v1/callbacks/status/1234?tenant=a")
    sid = client.send(TO, "hello", status_callback=url).sid
    got = receiver.wait_for(3)
    time.sleep(0.2)  # nothing more comes (not the initial 'queued')
    assert [r.params["MessageStatus"] for r in receiver.received] == [
        "sending", "sent", "delivered",
    ]  # fmt: skip
    validator = RequestValidator(TOKEN)
    for r in got:
        assert r.url == url
        assert validator.validate(r.url, r.params, r.signature)
        assert r.params["MessageSid"] == sid == r.params["SmsSid"]
        assert r.params["AccountSid"] == ACCOUNT and r.params["From"] == SENDER
        assert r.params["To"] == TO and "ErrorCode" not in r.params


def test_failure_callback_carries_the_error_code(
    carrier_sim: SimulatorThread, receiver: Receiver
) -> None:
    client = client_for(carrier_sim)
    client.send("+15005550010", "x", status_callback=receiver.url("/cb"))
    # All three changes are due at once here: they may arrive in any order.
    [final] = [r for r in receiver.wait_for(3) if r.params["MessageStatus"] == "undelivered"]
    assert final.params["ErrorCode"] == "30003"


def test_a_forced_status_is_posted_too(carrier_sim: SimulatorThread, receiver: Receiver) -> None:
    carrier_sim.state.config.update({"sent_after": 0.0, "delivered_after": 3600.0})
    sid = client_for(carrier_sim).send(TO, "x", status_callback=receiver.url("/cb")).sid
    receiver.wait_for(2)
    carrier_sim.state.force(sid, "failed", 30007)
    last = receiver.wait_for(3)[-1]
    assert (last.params["MessageStatus"], last.params["ErrorCode"]) == ("failed", "30007")


def test_loss_duplication_and_reordering(carrier_sim: SimulatorThread, receiver: Receiver) -> None:
    config = carrier_sim.state.config
    config.update({"sent_after": 0.0, "delivered_after": 0.0, "callback_loss": 1.0})
    client = client_for(carrier_sim)
    client.send(TO, "lost", status_callback=receiver.url("/lost"))
    time.sleep(0.3)
    assert receiver.received == []
    assert {r.outcome for r in carrier_sim.callbacks.snapshot()} == {"lost"}

    config.update({"callback_loss": 0.0, "callback_duplicate": 1.0})
    client.send(TO, "twice", status_callback=receiver.url("/twice"))
    assert len(receiver.wait_for(6)) == 6  # sending, sent, delivered: each twice

    receiver.received.clear()
    config.update(
        {"callback_duplicate": 0.0, "callback_reorder": 1.0, "callback_reorder_delay": 0.3,
         "sent_after": 0.1, "delivered_after": 0.2}
    )  # fmt: skip
    client.send(TO, "late", status_callback=receiver.url("/late"))
    got = receiver.wait_for(3)
    # Every callback held back by the same delay keeps its order; with a random delay on
    # top, a later status arrives first.
    assert sorted(r.params["MessageStatus"] for r in got) == ["delivered", "sending", "sent"]
    receiver.received.clear()
    config.update({"callback_reorder": 0.0, "callback_delay": 0.5, "seed": None})
    orders = set()
    for i in range(8):
        client.send(TO, f"d{i}", status_callback=receiver.url(f"/d{i}"))
    got = receiver.wait_for(24)
    for i in range(8):
        orders.add(tuple(r.params["MessageStatus"] for r in got if r.url.endswith(f"/d{i}")))
    assert len(orders) > 1  # random lateness reorders some of them
    assert all(sorted(o) == ["delivered", "sending", "sent"] for o in orders)
