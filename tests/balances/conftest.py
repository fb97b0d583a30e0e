"""Fixtures of the balance-check tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.config import get_settings
from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread


@pytest.fixture
def core_banking(monkeypatch: pytest.MonkeyPatch) -> Iterator[CoreBankingThread]:
    """The simulator on a free loopback port, configured as the core-banking API."""
    sim = CoreBankingThread(CoreBankingConfig(seed=7)).start()
    monkeypatch.setenv("CORE_BANKING_URL", sim.base_url)
    monkeypatch.setenv("CORE_BANKING_RPS", "0")
    get_settings.cache_clear()
    yield sim
    sim.stop()
    get_settings.cache_clear()
