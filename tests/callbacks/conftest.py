"""Fixtures of the callback-receiver tests: the receiver on loopback, a real database, and
the carrier simulator wired to call it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from app.callbacks.web import create_app
from app.config import get_settings
from app.devtools.simulators.carrier import SimConfig, SimulatorThread
from tests.support.callbacks import ReceiverThread, Wired, receiver_settings
from tests.support.carrier import ACCOUNT, ALWAYS_OPEN, SENDER, TOKEN


@pytest.fixture
def receiver(db: Engine) -> Iterator[ReceiverThread]:
    """The receiver (CALLBACK_PUBLIC_URL = tests.support.callbacks.PUBLIC), no rate limit."""
    server = ReceiverThread(create_app(receiver_settings())).start()
    yield server
    server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def wired(db: Engine) -> Iterator[Wired]:
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


@pytest.fixture
def sender_env(wired: Wired, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wired]:
    """Settings of a sender whose creates call back the wired receiver."""
    sim, _, public = wired
    for key, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER,
        "TWILIO_BASE_URL": sim.base_url, "TWILIO_TIMEOUT_SECONDS": "2",
        "CALLBACK_PUBLIC_URL": public, "SMS_SEND_WINDOW": ALWAYS_OPEN, "SMS_MPS": "0",
        "SMS_TEMPLATE_LANGUAGE": "en",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield wired
    get_settings.cache_clear()
