"""What the scripts share: loopback ports, child processes, and the benchmarks' databases.

The scripts run as ``python scripts/NAME.py`` (``./scripts/bench`` does so), which puts
this folder first on ``sys.path``: they import this module as ``_common``. Importing it
also puts this checkout's root on ``sys.path`` (when it is not there yet), so ``app`` and
``worker`` are this checkout's own even when the virtual environment was installed from
another one (PREMIUM_NOTIFY_VENV). Import it before ``app``: isort places it there anyway
(a third-party name sorts before the first-party ``app`` and ``worker``).

Each benchmark works in a database of its own, created (and migrated) at its start and
dropped at its end, on the server that DATABASE_URL names (or the embedded one).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeAlias

import psycopg2
import psycopg2.extensions
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The virtual environment's commands (dramatiq, periodiq, premium-notify).
BIN = Path(sys.executable).parent

Connection: TypeAlias = psycopg2.extensions.connection
Cursor: TypeAlias = psycopg2.extensions.cursor


# --- ports and processes -----------------------------------------------------------------
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; raise after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def stop(*procs: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM every process still running, then wait for each (they stop in parallel)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        proc.wait(timeout)


# --- the benchmarks' databases -----------------------------------------------------------
def database_url(server_url: str, database: str) -> str:
    """``server_url`` with its database replaced by ``database`` (password kept), with
    the psycopg2 driver when none is named, as the app reads DATABASE_URL."""
    url = make_url(server_url).set(database=database)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return url.render_as_string(hide_password=False)


def connect(url: str, database: str | None = None) -> Connection:
    """An autocommit psycopg2 connection to ``url`` (or to another database on its server)."""
    target = make_url(url).set(drivername="postgresql")
    if database is not None:
        target = target.set(database=database)
    conn = psycopg2.connect(target.render_as_string(hide_password=False))
    conn.autocommit = True
    return conn


def admin(url: str) -> Connection:
    """A maintenance connection (database ``postgres``) on the server of ``url``."""
    return connect(url, "postgres")


def recreate(conn: Connection, name: str) -> None:
    """Drop database ``name`` (whoever is connected) and create it empty."""
    drop(conn, name)
    conn.cursor().execute(f'CREATE DATABASE "{name}"')


def drop(conn: Connection, name: str) -> None:
    """Drop database ``name``, disconnecting whoever is connected."""
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def scalar(cur: Cursor) -> Any:
    """The first column of the row the last query on ``cur`` returned (it must return one)."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("the query returned no row")
    return row[0]


def migrate(url: str) -> None:
    """``alembic upgrade head`` on ``url``, without reconfiguring this process's logging."""
    from alembic import command
    from app.cli.db import alembic_config

    config = alembic_config(url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
