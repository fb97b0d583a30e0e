"""Fixtures of the callback-receiver tests: the receiver on loopback, a real database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from app.callbacks.web import create_app
from tests.support.callbacks import ReceiverThread, receiver_settings


@pytest.fixture
def receiver(db: Engine) -> Iterator[ReceiverThread]:
    """The receiver (CALLBACK_PUBLIC_URL = tests.support.callbacks.PUBLIC), no rate limit."""
    server = ReceiverThread(create_app(receiver_settings())).start()
    yield server
    server.stop()
