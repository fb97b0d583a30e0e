"""SQL of the monthly partitions (migration 0009): list, create ahead, count, retire.

Partitions are named ``<table>_pYYYYMM`` and bound ``[first day, first day of the next
month)``. Creating and dropping one needs ownership of the parent, which no service
role has: both go through the owner's definer functions of migration 0011
(``pn_ensure_partitions``, ``pn_retire_partition``; EXECUTE for the maintenance role
only). Rows are read through the parent with the month's bounds (the planner prunes to
the one partition; the partitions themselves carry no grants). Table names formatted
into the statements come from ``PARTITIONED``, never from input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.months import Month

# Partitioned table -> its partition column (as SQL spells it).
PARTITIONED: dict[str, str] = {
    "daily_balance_checks": "check_date",
    "audit_log": '"timestamp"',
    "system_events": "created_at",
}
_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<year>\d{4})(?P<month>\d{2})$")


@dataclass(frozen=True)
class Partition:
    table: str
    month: Month

    @property
    def name(self) -> str:
        return partition_name(self.table, self.month)


def partition_name(table: str, month: Month) -> str:
    if table not in PARTITIONED:
        raise ValueError(f"{table} is not partitioned")
    return f"{table}_p{month.year:04d}{month.month:02d}"


def list_partitions(session: Session, table: str) -> list[Partition]:
    """The table's monthly partitions, oldest first."""
    names = session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:t AS regclass)"
        ),
        {"t": table},
    ).all()
    found = []
    for name in names:
        match = _NAME.match(name)
        if match and match["table"] == table:
            found.append(Partition(table, Month(int(match["year"]), int(match["month"]))))
    return sorted(found, key=lambda p: (p.month.year, p.month.month))


def create_partitions(session: Session, table: str, first: Month, last: Month) -> list[str]:
    """Create the missing partitions of ``table`` for ``first`` .. ``last`` (the owner's
    ``pn_ensure_partitions``); returns the names created."""
    if table not in PARTITIONED:
        raise ValueError(f"{table} is not partitioned")
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    created = session.scalar(
        text("SELECT public.pn_ensure_partitions(:t, :first, :last)"),
        {"t": table, "first": first.first, "last": last.first},
    )
    return list(created or [])


def bounds_predicate(partition: Partition) -> str:
    """The partition's rows as a WHERE clause on its parent (literal bounds of a Month)."""
    column = PARTITIONED[partition.table]
    first, end = partition.month.first.isoformat(), partition.month.next_first.isoformat()
    return f"{column} >= '{first}' AND {column} < '{end}'"


def count_rows(session: Session, partition: Partition) -> int:
    """Rows in one partition (read through the parent)."""
    return int(
        session.scalar(
            text(f"SELECT count(*) FROM {partition.table} WHERE {bounds_predicate(partition)}")
        )
        or 0
    )


def _frozen_name(partition: Partition) -> str:
    return f"{partition.name}_frozen"


def freeze(session: Session, partition: Partition) -> bool:
    """Refuse any new or changed row in the partition from now on (``CHECK (false) NOT
    VALID``: existing rows are not checked, every insert or update is), so that what is
    exported afterwards is all it will ever hold. Idempotent; through the owner's
    ``pn_freeze_partition`` (migration 0011: only months past their horizon). True when
    it froze it now."""
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    return bool(
        session.scalar(
            text("SELECT public.pn_freeze_partition(:t, :m)"),
            {"t": partition.table, "m": partition.month.first},
        )
    )


def is_frozen(session: Session, partition: Partition) -> bool:
    return bool(
        session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = :n "
                "AND conrelid = to_regclass(:p))"
            ),
            {"n": _frozen_name(partition), "p": partition.name},
        )
    )


def retire(
    session: Session,
    partition: Partition,
    *,
    rows: int | None,
    cold_set: str | None,
    manifest_sha256: str | None,
) -> int:
    """Detach and drop the partition through the owner's ``pn_retire_partition`` (which
    refuses a month inside its horizon, and, for the tables kept cold, a row count other
    than the one verified in cold storage); returns the rows it held."""
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    return int(
        session.scalar(
            text("SELECT public.pn_retire_partition(:t, :m, :rows, :cold_set, :sha)"),
            {
                "t": partition.table,
                "m": partition.month.first,
                "rows": rows,
                "cold_set": cold_set,
                "sha": manifest_sha256,
            },
        )
        or 0
    )


def partition_bytes(session: Session, partition: Partition) -> int:
    """On-disk size of the partition with its indexes and TOAST."""
    return int(
        session.scalar(
            text("SELECT pg_total_relation_size(CAST(:n AS regclass))"), {"n": partition.name}
        )
        or 0
    )
