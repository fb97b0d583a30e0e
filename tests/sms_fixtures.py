"""Fixtures of the SMS / carrier / notifications tests (loaded with pytest_plugins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import get_settings
from app.simulators.carrier import SimConfig, SimulatorThread
from tests.sms_helpers import ACCOUNT, ALWAYS_OPEN, SENDER, TOKEN


@pytest.fixture
def carrier_sim() -> Iterator[SimulatorThread]:
    """A carrier simulator on a free loopback port; statuses final at once."""
    sim = SimulatorThread(
        SimConfig(account_sid=ACCOUNT, auth_token=TOKEN, sent_after=0.0, delivered_after=0.0)
    ).start()
    yield sim
    sim.stop()


@pytest.fixture
def sms_env(
    carrier_sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimulatorThread]:
    """Settings pointing at the simulator, window always open, no rate limit."""
    for key, value in {
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_BASE_URL": carrier_sim.base_url,
        "TWILIO_TIMEOUT_SECONDS": "2",
        "SMS_SEND_WINDOW": ALWAYS_OPEN,
        "SMS_MPS": "0",
        "SMS_TEMPLATE_LANGUAGE": "en",
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield carrier_sim
    get_settings.cache_clear()
