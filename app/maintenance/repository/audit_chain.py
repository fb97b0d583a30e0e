"""SQL of ``audit verify`` and of the chain heads exported with the backups.

Reads only. The row hash is recomputed here with the same expression migration 0010's
``audit_row_hash()`` uses, written out (not by calling that function, which whoever
rewrites history could also rewrite). Hot and archived rows are read together: retention
moves rows, it never breaks their statement apart for long (one transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session


def _text(column: str) -> str:
    return f"coalesce(octet_length({column})::text || ':' || {column}, '-')"


# The row hash as migration 0010 defines it (audit_row_hash(), and the triggers' inlined
# copy): the per-row columns joined by '|' (NULL as '-'), then the statement-wide ones,
# texts length-prefixed; sha256 of that line.
_LINE_HEAD = ", '|', ".join(
    f"coalesce({c}::text, '-')"
    for c in ("id", "entity_id", "correlation_id", "old_values", "new_values", "details")
)
_LINE_TAIL = " || '|' || ".join(
    [
        "''",
        _text("entity_type"),
        _text("operation"),
        _text("user_id"),
        _text("service_name"),
        "coalesce(\"timestamp\"::text, '-')",
        _text("db_user"),
        "coalesce(statement_id::text, '-')",
    ]
)
_HASH = f"pg_catalog.sha256(pg_catalog.convert_to(concat({_LINE_HEAD}, {_LINE_TAIL}), 'UTF8'))"
_DATESTYLE = text("SET LOCAL \"DateStyle\" = 'ISO, YMD'")  # as the audit functions pin it
_COLUMNS = f'id, statement_id, row_hash, "timestamp", {_HASH} AS computed'
_RANGE = '"timestamp" >= :start AND "timestamp" < :end'

# Every row of the range, hot and archived (an identical copy in both counts once).
_ROWS = (
    f"SELECT 'audit_log' AS tbl, {_COLUMNS} FROM public.audit_log WHERE {_RANGE} "
    f"UNION ALL SELECT 'audit_log_archive', {_COLUMNS} FROM public.audit_log_archive "
    f"WHERE {_RANGE} AND NOT EXISTS (SELECT 1 FROM public.audit_log h "
    "WHERE h.id = audit_log_archive.id AND h.row_hash IS NOT DISTINCT FROM "
    "audit_log_archive.row_hash)"
)

# Redactions (GDPR): a sealed REDACT row names the hash of the content that replaced it.
_REDACTED = (
    "SELECT 1 FROM public.{t} x WHERE x.entity_type = 'AuditLog' AND x.operation = 'REDACT' "
    "AND x.entity_id = r.id AND x.statement_id IS NOT NULL "
    "AND x.details ->> 'content_hash' = encode(r.computed, 'hex')"
)
_CHANGED_ROWS = text(
    f'SELECT r.tbl, r.id, r.statement_id, r."timestamp" FROM ({_ROWS}) r '
    "WHERE r.row_hash IS DISTINCT FROM r.computed AND r.statement_id IS NOT NULL "
    f"AND NOT EXISTS ({_REDACTED.format(t='audit_log')}) "
    f"AND NOT EXISTS ({_REDACTED.format(t='audit_log_archive')}) "
    'ORDER BY r."timestamp", r.id'
)
_REDACTED_COUNT = text(
    f"SELECT count(*) FROM ({_ROWS}) r WHERE r.row_hash IS DISTINCT FROM r.computed "
    "AND r.statement_id IS NOT NULL"
)
_STATEMENTS = text(
    "SELECT r.statement_id, count(*)::integer AS n, "
    "pg_catalog.sha256(pg_catalog.string_agg(r.row_hash, ''::bytea ORDER BY r.id)) AS digest, "
    'min(r."timestamp")::date AS day '
    f"FROM ({_ROWS}) r WHERE r.statement_id IS NOT NULL GROUP BY r.statement_id"
)
_UNSEALED = text(
    f'SELECT r.tbl, r.id, r."timestamp" FROM ({_ROWS}) r WHERE r.statement_id IS NULL '
    'AND r."timestamp" >= :chain_start ORDER BY r."timestamp", r.id'
)
_LEGACY = text(f"SELECT count(*) FROM ({_ROWS}) r WHERE r.statement_id IS NULL")
_SEALS = text(
    "SELECT day, seq, statement_id, row_count, digest, prev_seal, seal FROM public.audit_seals "
    "WHERE day >= :first AND day <= :last ORDER BY day, seq"
)
_CHAIN_START = text("SELECT (min(sealed_at) AT TIME ZONE 'UTC') FROM public.audit_seals")
_BOUNDS = text(
    "SELECT min(day), max(day) FROM (SELECT day FROM public.audit_seals UNION ALL "
    'SELECT min("timestamp")::date FROM public.audit_log UNION ALL '
    'SELECT min("timestamp")::date FROM public.audit_log_archive) d'
)
_RETIRED = text(
    "SELECT DISTINCT month FROM public.pn_retired_partitions WHERE table_name = 'audit_log' "
    "AND month <= :last AND month + interval '1 month' > :first ORDER BY month"
)
_HEADS = text(
    "SELECT DISTINCT ON (day) day, seq, seal, sealed_at FROM public.audit_seals "
    "WHERE day >= :first AND day <= :last ORDER BY day, seq DESC"
)


@dataclass(frozen=True)
class Seal:
    day: date
    seq: int
    statement_id: int
    row_count: int
    digest: bytes
    prev_seal: bytes
    seal: bytes


@dataclass(frozen=True)
class Statement:
    statement_id: int
    rows: int
    digest: bytes
    day: date


@dataclass(frozen=True)
class RowRef:
    table: str
    id: str
    statement_id: int | None
    timestamp: datetime


@dataclass(frozen=True)
class Head:
    day: date
    seq: int
    seal: bytes
    sealed_at: datetime


def _window(first: date, last: date) -> dict[str, datetime]:
    start = datetime(first.year, first.month, first.day)
    return {"start": start, "end": datetime(last.year, last.month, last.day) + timedelta(days=1)}


def bounds(session: Session) -> tuple[date | None, date | None]:
    """The first and last day anything was audited (None, None on an empty trail); pins
    the transaction's DateStyle first, as the audit functions do (the hash's timestamps)."""
    session.execute(_DATESTYLE)
    row = session.execute(_BOUNDS).one()
    return row[0], row[1]


def chain_start(session: Session) -> datetime | None:
    """When the first seal was made (UTC): unsealed rows after it are not legacy."""
    value: datetime | None = session.scalar(_CHAIN_START)
    return value


def seals(session: Session, first: date, last: date) -> Iterator[Seal]:
    for row in session.execute(_SEALS, {"first": first, "last": last}):
        yield Seal(
            row.day, row.seq, row.statement_id, row.row_count,
            bytes(row.digest), bytes(row.prev_seal), bytes(row.seal),
        )  # fmt: skip


def statements(session: Session, first: date, last: date) -> dict[int, Statement]:
    """Recomputed digest and row count of every statement with rows in the range."""
    return {
        row.statement_id: Statement(row.statement_id, row.n, bytes(row.digest), row.day)
        for row in session.execute(_STATEMENTS, _window(first, last))
    }


def changed_rows(session: Session, first: date, last: date) -> list[RowRef]:
    """Sealed rows whose content no longer matches their hash (redactions excepted)."""
    return [
        RowRef(r.tbl, str(r.id), r.statement_id, r.timestamp)
        for r in session.execute(_CHANGED_ROWS, _window(first, last))
    ]


def redacted_count(session: Session, first: date, last: date) -> int:
    """Rows whose content differs from their hash (redacted or changed)."""
    return int(session.scalar(_REDACTED_COUNT, _window(first, last)) or 0)


def unsealed_rows(session: Session, first: date, last: date, since: datetime) -> list[RowRef]:
    """Rows without a statement written after the chain started: forged."""
    params = {**_window(first, last), "chain_start": since}
    return [RowRef(r.tbl, str(r.id), None, r.timestamp) for r in session.execute(_UNSEALED, params)]


def legacy_count(session: Session, first: date, last: date) -> int:
    """Rows without a statement at all (written before migration 0010, or forged)."""
    return int(session.scalar(_LEGACY, _window(first, last)) or 0)


def heads(session: Session, first: date, last: date) -> list[Head]:
    """The last seal of each day in the range."""
    return [
        Head(r.day, r.seq, bytes(r.seal), r.sealed_at)
        for r in session.execute(_HEADS, {"first": first, "last": last})
    ]


def retired_months(session: Session, first: date, last: date) -> list[date]:
    """First days of the audit_log months in the range retired to cold storage (their
    partitions dropped by ``pn_retire_partition``, migration 0011)."""
    return list(session.scalars(_RETIRED, {"first": first, "last": last}))
