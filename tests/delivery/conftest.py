"""Fixtures of the delivery-tracking tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import get_settings
from app.devtools.simulators.carrier import SimConfig, SimulatorThread
from tests.support.carrier import ACCOUNT, SENDER, TOKEN


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorThread]:
    """Messages are 'sent' at once and stay so until a test forces another status."""
    simulator = SimulatorThread(
        SimConfig(account_sid=ACCOUNT, auth_token=TOKEN, sent_after=0.0, delivered_after=3600.0)
    ).start()
    for key, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_BASE_URL": simulator.base_url,
        "TWILIO_TIMEOUT_SECONDS": "2",
        "DELIVERY_BACKOFF_MINUTES": "1,2,5",
        "DELIVERY_PAGE_SIZE": "2",
        "DELIVERY_CARRIER_RPS": "0",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield simulator
    simulator.stop()
    get_settings.cache_clear()
