"""The benchmarks' database helpers: each benchmark works in a database of its own,
created (and migrated) at its start and dropped at its end, on the server that
DATABASE_URL names (or the embedded one)."""

from __future__ import annotations

import psycopg2
from sqlalchemy.engine import make_url


def connect(url: str, database: str | None = None) -> psycopg2.extensions.connection:
    """An autocommit psycopg2 connection to ``url`` (or to another database on its server)."""
    target = make_url(url).set(drivername="postgresql")
    if database is not None:
        target = target.set(database=database)
    conn = psycopg2.connect(target.render_as_string(hide_password=False))
    conn.autocommit = True
    return conn


def admin(url: str) -> psycopg2.extensions.connection:
    """A maintenance connection (database ``postgres``) on the server of ``url``."""
    return connect(url, "postgres")


def recreate(conn: psycopg2.extensions.connection, name: str) -> None:
    """Drop database ``name`` (whoever is connected) and create it empty."""
    drop(conn, name)
    conn.cursor().execute(f'CREATE DATABASE "{name}"')


def drop(conn: psycopg2.extensions.connection, name: str) -> None:
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
