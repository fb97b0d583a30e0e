"""What the lifecycle benchmarks share (bench_retention.py, bench_partitions.py).

A private PostgreSQL 15 cluster (``pg_clusters.Pg15``): WAL and statement counts are this
benchmark's alone, not those of whoever else uses the machine's server. Statements are
counted client-side by a psycopg2 cursor class (every execute, executemany and COPY of
the app's engine and of the benchmark's own connections).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
from _common import Connection, migrate, scalar
from pg_clusters import Pg15

from app.db import session as db_session

STATEMENTS = {"n": 0}


class CountingCursor(psycopg2.extensions.cursor):
    def execute(self, query: Any, vars: Any = None) -> Any:
        STATEMENTS["n"] += 1
        return super().execute(query, vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        STATEMENTS["n"] += 1
        return super().executemany(query, vars_list)

    def copy_expert(self, sql: Any, file: Any, size: int = 8192) -> Any:
        STATEMENTS["n"] += 1
        return super().copy_expert(sql, file, size)


@dataclass
class Work:
    statements: int
    wal_bytes: int
    seconds: float


@contextmanager
def cluster(workdir: Path) -> Iterator[str]:
    """A private PostgreSQL 15 cluster with database ``bench`` migrated to head."""
    pg = Pg15(workdir)
    pg.init_with({"max_wal_size": "4GB", "shared_buffers": "256MB"})
    pg.start()
    try:
        pg.admin().cursor().execute("CREATE DATABASE bench")
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{pg.port}/bench"
        migrate(url)
        yield url
    finally:
        pg.stop()


def connect(url: str) -> Connection:
    conn = psycopg2.connect(url.replace("+psycopg2", ""), cursor_factory=CountingCursor)
    conn.autocommit = True
    return conn


def use_engine(url: str) -> None:
    """The app's engine on ``url``, its statements counted."""
    engine = db_session.build_engine(
        url,
        connect_args={"options": "-c timezone=UTC", "cursor_factory": CountingCursor},
    )
    db_session.set_engine(engine)


def measure(conn: Connection, fn: Callable[[], object]) -> Work:
    cur = conn.cursor()
    cur.execute("CHECKPOINT")
    cur.execute("SELECT pg_current_wal_lsn()")
    start_lsn = scalar(cur)
    STATEMENTS["n"] = 0
    t = time.perf_counter()
    fn()
    seconds = time.perf_counter() - t
    statements = STATEMENTS["n"]
    cur.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (start_lsn,))
    return Work(statements, int(scalar(cur)), seconds)


def load_customers(conn: Connection, customers: int) -> None:
    conn.cursor().execute(
        "INSERT INTO customers (account_number, first_name, last_name, phone_number) "
        "SELECT 'B' || lpad(g::text, 9, '0'), 'Bench', 'Customer', "
        "'+97252' || lpad(g::text, 7, '0') FROM generate_series(1, %s) g",
        (customers,),
    )


def load_month(conn: Connection, first: date, days: int, audit: bool = True) -> int:
    """One check per customer and day of the month, and (``audit``) one audit row per
    check as the trigger writes them (loaded directly: triggers off for the load).
    Returns the checks loaded."""
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")
    cur.execute(
        "INSERT INTO daily_balance_checks (customer_id, check_date, balance, passes_threshold, "
        "check_timestamp) SELECT c.id, d::date, 15000 + (hashtext(c.id::text || d::text) "
        "%% 5000), true, d + time '06:00' FROM customers c, "
        "generate_series(%s::date, %s::date, interval '1 day') d",
        (first, first + timedelta(days=days - 1)),
    )
    loaded = int(cur.rowcount)
    if audit:
        cur.execute(
            "INSERT INTO audit_log (entity_type, entity_id, operation, new_values, "
            "service_name, timestamp) SELECT 'BalanceCheck', id, 'INSERT', "
            "jsonb_build_object('id', id, 'customer_id', customer_id, 'check_date', "
            "check_date, 'balance', balance, 'passes_threshold', passes_threshold), "
            "'BalanceMonitor', check_timestamp FROM daily_balance_checks "
            "WHERE check_date >= %s AND check_date < %s",
            (first, first + timedelta(days=days)),
        )
    cur.execute("SET session_replication_role = origin")
    cur.execute("ANALYZE daily_balance_checks")
    cur.execute("ANALYZE audit_log")
    return loaded


def row(label: str, work: Work, reference: Work | None = None) -> str:
    text = (
        f"  {label:<44} {work.statements:>10,} {work.wal_bytes / 2**20:>12,.1f} "
        f"{work.seconds:>9.2f}"
    )
    if reference is not None:
        text += (
            f"   {work.statements / max(reference.statements, 1):7.4f}x "
            f"{work.wal_bytes / max(reference.wal_bytes, 1):7.4f}x "
            f"{work.seconds / max(reference.seconds, 1e-9):7.4f}x"
        )
    return text


HEADER = (
    f"  {'':<44} {'statements':>10} {'WAL MiB':>12} {'seconds':>9}   "
    f"{'ratio to the reference (statements, WAL, s)'}"
)
