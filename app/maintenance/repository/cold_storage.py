"""SQL of cold storage: a table's columns, the rows of one retiring month, streamed out.

The months' predicates (``MONTH_ROWS``) are fixed per table; table names come from
them and from the partition names of ``repository.partitions``, never from input. COPY
runs on the DB-API connection underneath the caller's session, in its transaction.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.maintenance.repository.partitions import Partition, bounds_predicate


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


# Rows of one month of the small tables (alias t; :first, :next the month's bounds).
# A qualification leaves only once no notification refers to it (foreign key).
MONTH_ROWS: dict[str, str] = {
    "delivery_status": "t.notification_id IN (SELECT n.id FROM notifications n "
    "WHERE n.created_at >= :first AND n.created_at < :next)",
    "notifications": "t.created_at >= :first AND t.created_at < :next",
    "monthly_qualifications": "t.qualification_month >= :first AND t.qualification_month < :next "
    "AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.qualification_id = t.id)",
}
# Column a month of a small table is found by, to list the months due.
MONTH_COLUMN = {
    "delivery_status": None,  # leaves with its notification's month
    "notifications": "created_at",
    "monthly_qualifications": "qualification_month",
}


def columns(session: Session, table: str) -> list[tuple[str, str, int | None, int | None]]:
    """(name, data type, numeric precision, numeric scale) in column order."""
    rows = session.execute(
        text(
            "SELECT column_name, data_type, numeric_precision, numeric_scale "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name = :t ORDER BY ordinal_position"
        ),
        {"t": table},
    ).all()
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def months_due(session: Session, table: str, before: date) -> list[date]:
    """First days of the months of ``table`` that end on or before ``before``."""
    column = MONTH_COLUMN[table]
    if column is None:
        return []
    return list(
        session.scalars(
            text(
                f"SELECT DISTINCT CAST(date_trunc('month', {column}) AS date) AS m "
                f"FROM {table} WHERE {column} < CAST(date_trunc('month', "
                "CAST(:before AS date)) AS date) ORDER BY m"
            ),
            {"before": before},
        )
    )


def lock_month(session: Session, table: str, first: date, next_first: date) -> int:
    """Lock the month's rows (FOR UPDATE: no one changes them while they leave)."""
    ids = session.scalars(
        text(f"SELECT t.id FROM {table} t WHERE {MONTH_ROWS[table]} FOR UPDATE OF t"),
        {"first": first, "next": next_first},
    ).all()
    return len(ids)


def delete_month(session: Session, table: str, first: date, next_first: date) -> int:
    """Delete the month's rows; returns how many went."""
    result: Any = session.execute(
        text(f"DELETE FROM {table} t WHERE {MONTH_ROWS[table]}"),
        {"first": first, "next": next_first},
    )
    return int(result.rowcount)


def _copy(session: Session, query: str, params: dict[str, Any], out: _Writable) -> None:
    raw: Any = session.connection().connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
        sql = cur.mogrify(query, params).decode()
        cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", out)


def copy_month(
    session: Session,
    table: str,
    names: list[str],
    first: date,
    next_first: date,
    out: _Writable,
) -> None:
    """Stream the month's rows of a small table as CSV (with a header) into ``out``."""
    where = MONTH_ROWS[table].replace(":first", "%(first)s").replace(":next", "%(next)s")
    query = f"SELECT {', '.join(f't.{n}' for n in names)} FROM {table} t WHERE {where}"
    _copy(session, query, {"first": first, "next": next_first}, out)


def copy_partition(
    session: Session, partition: Partition, names: list[str], out: _Writable
) -> None:
    """Stream a whole partition as CSV (with a header) into ``out`` (read through its
    parent with the month's bounds: the partitions carry no grants of their own)."""
    cols = ", ".join(f'"{n}"' for n in names)
    where = bounds_predicate(partition)
    _copy(session, f"SELECT {cols} FROM {partition.table} WHERE {where}", {}, out)
