"""SQL of backups and restores, on the psycopg2 connections ``maintenance.backup`` opens.

Raw DB-API connections, not Sessions: a backup exports its snapshot to pg_dump and
fingerprints the tables inside that same transaction, and a restore creates databases
(which cannot run inside a transaction block).
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

# Pinned so the text of a row (and so its checksum) is the same on any server.
SESSION_SETUP = "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET extra_float_digits = 3"


def server_version_num(pg: Any) -> int:
    """``server_version_num`` (150004 for 15.4)."""
    with pg.cursor() as cur:
        cur.execute("SHOW server_version_num")
        (num,) = cur.fetchone()
    return int(num)


def fingerprints(pg: Any) -> dict[str, dict[str, Any]]:
    """{table: {rows, checksum}} for every table of the public schema, on an open connection.

    Checksums are order-independent sums of md5 over each row's text (no sort, one pass,
    constant memory).
    """
    with pg.cursor() as cur:
        cur.execute(SESSION_SETUP)
        cur.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        )
        tables = [t for (t,) in cur.fetchall()]
        result: dict[str, dict[str, Any]] = {}
        for table in tables:
            cur.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)"
                    "::bigint), 0) FROM public.{} t"
                ).format(sql.Identifier(table))
            )
            rows, checksum = cur.fetchone()
            result[table] = {"rows": int(rows), "checksum": str(checksum)}
    return result


def audit_chain_heads(pg: Any, days: int = 7) -> list[dict[str, Any]]:
    """The last seal of each of the last ``days`` days of the audit chain (migration 0010;
    none before it): exported beside a backup, a rewritten history cannot match them."""
    with pg.cursor() as cur:
        cur.execute("SELECT to_regclass('public.audit_seals') IS NOT NULL")
        if not cur.fetchone()[0]:
            return []
        cur.execute(
            "SELECT DISTINCT ON (day) day, seq, encode(seal, 'hex') FROM public.audit_seals "
            "WHERE day > (SELECT max(day) FROM public.audit_seals) - %s "
            "ORDER BY day, seq DESC",
            (days,),
        )
        return [{"day": d.isoformat(), "seq": int(q), "seal": h} for d, q, h in cur.fetchall()]


def export_snapshot(pg: Any) -> str:
    """Export the transaction's snapshot (for ``pg_dump --snapshot``); returns its id."""
    with pg.cursor() as cur:
        cur.execute("SELECT pg_export_snapshot()")
        (snapshot,) = cur.fetchone()
    return str(snapshot)


def database_exists(admin: Any, database: str) -> bool:
    """Whether the server has a database of this name."""
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        return cur.fetchone() is not None


def create_database(admin: Any, database: str) -> None:
    """CREATE DATABASE (``admin`` must be in autocommit mode)."""
    with admin.cursor() as cur:
        # An operator's --target-db: an identifier, quoted by psycopg2, never spliced.
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def public_table_count(pg: Any) -> int:
    """How many tables the public schema holds (0: an empty database)."""
    with pg.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        (existing,) = cur.fetchone()
    return int(existing)
