"""What the demo runs against: a database, a broker, core banking and a carrier.

Anything configured is used as is (DATABASE_URL's server, REDIS_URL, CORE_BANKING_URL,
TWILIO_*); anything missing is replaced by a local stand-in: the embedded PostgreSQL,
an in-process broker, the core-banking and carrier simulators on free loopback ports.
The demo's own settings (send window, polling pace, simulator throughput) are set as
environment overrides *before* the settings object and the worker modules are loaded,
and every one of them is announced in ``notes`` so the output says what was changed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from app.config import get_settings
from app.db import session as db_session
from app.db.embedded import start_embedded
from app.devtools.demo.repository import recreate_database

DEMO_DATABASE = "premium_notify_demo"
# Every day of the week, all day: the production window (Sun-Thu 09-20, Fri 09-13)
# would hold a demo started on a Saturday until Sunday morning.
ALWAYS_OPEN_WINDOW = "mon-sun 00:00-24:00"
# The simulators' profile mix for the demo: 30 % premium, 30 % hovering around the
# threshold (some hold on all month, most dip below it on some day), 5 % overdrawn.
DEMO_PROFILES = [30, 60, 65]
DEMO_MISSING_RATE = 0.01  # accounts the bank does not know: MISSING_DATA in the report
SIMULATED_SMS_MPS = "400"  # the carrier simulator has no limit; production default 30
SIM_ACCOUNT_SID = "AC" + "0" * 32
SIM_AUTH_TOKEN = "simulator-token"
SIM_SENDER = "PremiumBank"


class DemoSetupError(RuntimeError):
    """The demo cannot start (a setting it needs is missing, the month is open, ...)."""


@dataclass
class DemoEnvironment:
    """The parts in use; ``notes`` say in words what the demo chose or overrode."""

    database_url: str
    database_name: str
    broker_kind: str
    core_banking: Any = None  # CoreBankingThread when simulated
    carrier: Any = None  # SimulatorThread when simulated
    notes: list[str] = field(default_factory=list)

    @property
    def simulated_carrier(self) -> bool:
        return self.carrier is not None


def _override(env: dict[str, str], notes: list[str], name: str, value: str, why: str) -> None:
    env[name] = value
    notes.append(f"{name}={value}: {why}")


def _overrides(seed: int) -> tuple[dict[str, str], list[str], Any, Any]:
    """The environment the demo's settings are read from, and the simulators it starts."""
    settings = get_settings()
    env: dict[str, str] = {}
    notes: list[str] = []
    _override(env, notes, "SMS_SEND_WINDOW", ALWAYS_OPEN_WINDOW, "send window always open")
    _override(
        env, notes, "DELIVERY_BACKOFF_MINUTES", "0", "delivery polled every round, no backoff"
    )
    core_banking = carrier = None
    if not settings.core_banking_url:
        from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread

        core_banking = CoreBankingThread(
            CoreBankingConfig(seed=seed, missing_rate=DEMO_MISSING_RATE, profiles=DEMO_PROFILES)
        ).start()
        env["CORE_BANKING_URL"] = core_banking.base_url
        env["BALANCE_SOURCE"] = "http"
        notes.append(f"core banking: simulator on {core_banking.base_url} (seed {seed})")
        _override(env, notes, "CORE_BANKING_RPS", "0", "the simulator has no rate limit")
    else:
        notes.append("core banking: CORE_BANKING_URL as configured")
    if settings.twilio_account_sid is None:
        from app.devtools.simulators.carrier import SimConfig, SimulatorThread

        carrier = SimulatorThread(
            SimConfig(
                account_sid=SIM_ACCOUNT_SID,
                auth_token=SIM_AUTH_TOKEN,
                sent_after=0.3,
                delivered_after=1.0,
                seed=seed,
            )
        ).start()
        env.update(
            TWILIO_ACCOUNT_SID=SIM_ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=SIM_AUTH_TOKEN,
            TWILIO_BASE_URL=carrier.base_url,
            TWILIO_FROM=SIM_SENDER,
        )
        notes.append(f"carrier: Twilio-compatible simulator on {carrier.base_url}")
        _override(env, notes, "SMS_MPS", SIMULATED_SMS_MPS, "segments/s the simulator takes")
    else:
        if not (settings.twilio_from or settings.twilio_messaging_service_sid):
            raise DemoSetupError("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID must be set")
        notes.append("carrier: the configured Twilio account (real messages are sent)")
    return env, notes, core_banking, carrier


def _broker_kind() -> str:
    """Chosen before ``worker.tasks`` is imported: the broker is built at import time."""
    chosen = os.environ.get("DRAMATIQ_BROKER")
    if "worker.broker" in sys.modules:  # already built in this process (tests)
        return chosen or "redis"
    if chosen:
        return chosen
    return "redis" if get_settings().redis_url is not None else "stub"


def migrate(url: str) -> None:
    from alembic import command
    from app.cli.db import alembic_config

    config = alembic_config(url)
    config.attributes["configure_logger"] = False  # keep the demo's output readable
    command.upgrade(config, "head")


def _database(name: str, reuse: bool, notes: list[str]) -> str:
    """A fresh database ``name`` on the server in use (or, ``reuse``, the one there is)."""
    settings = get_settings()
    if settings.database_url is None:
        where = f"embedded PostgreSQL ({settings.embedded_pgdata})"
        if reuse:
            url = start_embedded(settings.embedded_pgdata, database=name)
        else:
            admin = start_embedded(settings.embedded_pgdata, database="postgres")
            url = recreate_database(admin, name)
    else:
        where = "the DATABASE_URL server"
        server = db_session.resolve_database_url(settings)
        url = server if reuse else recreate_database(server, name)
    shown = make_url(url).database
    notes.append(
        f"database: {shown} on {where}, "
        + ("reused as it is" if reuse else "created fresh for this run (the previous one dropped)")
    )
    migrate(url)
    return url


@contextmanager
def demo_environment(
    *, seed: int, database_name: str = DEMO_DATABASE, reuse_database: bool = False
) -> Iterator[DemoEnvironment]:
    """Set everything up; on exit stop the simulators and restore the environment."""
    env, notes, core_banking, carrier = _overrides(seed)
    kind = _broker_kind()
    env["DRAMATIQ_BROKER"] = kind
    notes.append(
        "broker: Redis (REDIS_URL) with in-process workers"
        if kind == "redis"
        else f"broker: in-process ({kind}) with in-process workers"
    )
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    get_settings.cache_clear()
    engine: Engine | None = None
    try:
        url = _database(database_name, reuse_database, notes)
        engine = db_session.build_engine(url)
        db_session.set_engine(engine)
        yield DemoEnvironment(
            url, make_url(url).database or database_name, kind, core_banking, carrier, notes
        )
    finally:
        db_session.set_engine(None)
        if engine is not None:
            engine.dispose()
        for sim in (carrier, core_banking):
            if sim is not None:
                sim.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
