"""Test harness: one real PostgreSQL test database per session, migrated once.

* ``DATABASE_URL`` set: its server is used; a fresh database ``pn_test`` is created on it
  (the database named in the URL is left alone). Unset: the embedded server.
* Every test that touches the database gets clean tables afterwards (TRUNCATE, with
  ``session_replication_role = replica`` so audit_log's append-only trigger stays out).
* Redis: ``REDIS_URL`` when set (the db is flushed around each test that asks for it),
  else fakeredis with one shared ``FakeServer``.
"""

from __future__ import annotations

import os

os.environ.setdefault("DRAMATIQ_BROKER", "stub")
# Unmocked carrier calls must fail loudly, never reach a real carrier.
os.environ.setdefault("TWILIO_BASE_URL", "http://127.0.0.1:9/you-forgot-the-carrier-simulator")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.config import get_settings  # noqa: E402
from app.db import session as db_session  # noqa: E402
from app.db.embedded import ensure_database  # noqa: E402
from app.devtools.simulators.carrier import SimConfig, SimulatorThread  # noqa: E402
from app.models import ARCHIVE_TABLES, Base  # noqa: E402
from tests.support.carrier import ACCOUNT, ALWAYS_OPEN, SENDER, TOKEN  # noqa: E402

# One database per test session (pid): parallel runs on one server never collide.
TEST_DATABASE = f"pn_test_{os.getpid()}"


def _server_url() -> str:
    """A URL (any database) on the server the tests use."""
    return db_session.resolve_database_url()


def _database_url(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


def recreate_database(server_url: str, database: str) -> str:
    import psycopg2

    url = make_url(server_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        # Databases of earlier test sessions that died before dropping theirs.
        cur.execute("SELECT datname FROM pg_database WHERE datname ~ '^pn_test_[0-9]+'")
        for (name,) in cur.fetchall():
            pid = int(name.split("_")[2])
            if not _pid_alive(pid):
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
    dsn = url.set(drivername="postgresql", database="postgres")
    ensure_database(dsn.render_as_string(hide_password=False), database)
    return _database_url(server_url, database)


def drop_database(server_url: str, database: str) -> None:
    import psycopg2

    admin = make_url(server_url).set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    conn.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def migrate(url: str, revision: str = "head") -> None:
    from alembic import command
    from app.cli.db import alembic_config

    config = alembic_config(url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


# Months the tests write rows in (the monthly partitions of migration 0009 have no default
# partition: a row outside them fails). 2024-01 through three months past today.
TEST_PARTITIONS_FROM = (2024, 1)


_PARTITION_COUNT = text(
    "SELECT count(*) FROM pg_inherits WHERE inhparent IN "
    "('daily_balance_checks'::regclass, 'audit_log'::regclass, 'system_events'::regclass)"
)
_partitions_made = {"count": 0}


def ensure_test_partitions(url: str) -> None:
    from datetime import date

    from app.maintenance.partitions import ensure_range
    from app.months import Month

    eng = db_session.build_engine(url)
    with Session(eng) as s, s.begin():
        last = Month.of(date.today())
        for _ in range(3):
            last = Month.of(last.next_first)
        ensure_range(s, Month(*TEST_PARTITIONS_FROM), last)
        _partitions_made["count"] = int(s.scalar(_PARTITION_COUNT) or 0)
    eng.dispose()


def _restore_partitions(engine: Engine) -> None:
    """A test that ran retention dropped the old months' partitions: make them again."""
    with engine.connect() as conn:
        count = int(conn.scalar(_PARTITION_COUNT) or 0)
    if count < _partitions_made["count"]:
        ensure_test_partitions(engine.url.render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = recreate_database(_server_url(), TEST_DATABASE)
    migrate(url)
    ensure_test_partitions(url)
    # Subprocesses (real Dramatiq workers, CLI runs) inherit the test database.
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    yield url
    drop_database(url, TEST_DATABASE)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = db_session.build_engine(database_url)
    db_session.set_engine(eng)
    yield eng
    db_session.set_engine(None)
    eng.dispose()


def truncate_all(engine: Engine) -> None:
    tables = [t.name for t in Base.metadata.sorted_tables] + list(ARCHIVE_TABLES)
    with engine.begin() as conn:
        # The append-only triggers have no bypass (migration 0010); the test superuser
        # skips every ordinary trigger instead (session_replication_role is superuser-only).
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(sorted(set(tables)))} RESTART IDENTITY CASCADE"))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    """The engine, with every table emptied after the test."""
    yield engine
    truncate_all(engine)
    _restore_partitions(engine)


@pytest.fixture
def session(db: Engine) -> Iterator[Session]:
    """A session for arranging and asserting; commits are real (tables are emptied after)."""
    with Session(db, expire_on_commit=False) as s:
        yield s


@pytest.fixture
def redis_client() -> Iterator[object]:
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        client = redis.Redis.from_url(url)
        client.flushdb()
        yield client
        client.flushdb()
    else:
        import fakeredis

        from worker.resources import shared_fake_server

        client = fakeredis.FakeRedis(server=shared_fake_server())
        client.flushdb()
        yield client
        client.flushdb()


# --- the carrier simulator (notifications, delivery, devtools and security tests) ---


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
