"""SQL of the monthly partitions (migration 0009): list, create ahead, count, detach+drop.

Partitions are named ``<table>_pYYYYMM`` and bound ``[first day, first day of the next
month)``. Table and partition names formatted into the statements come from
``PARTITIONED`` and from ``partition_name`` (a ``Month``), never from input.
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
# A partition's indexes are named after their parent index (the seed name) and the month,
# so a constraint violation names the seed constraint: daily_balance_checks_pkey_202610.
_RENAME_INDEXES = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT ci.relname AS child, cp.relname AS parent
             FROM pg_index i
             JOIN pg_class ci ON ci.oid = i.indexrelid
             JOIN pg_inherits h ON h.inhrelid = i.indexrelid
             JOIN pg_class cp ON cp.oid = h.inhparent
             WHERE i.indrelid = '{partition}'::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.child, left(r.parent, 56) || '_{suffix}');
    END LOOP;
END $$;
"""
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


def create_partition(session: Session, table: str, month: Month) -> bool:
    """Create the month's partition unless it exists; True when it was created."""
    name = partition_name(table, month)
    exists = session.scalar(text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name})
    if exists:
        return False
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    session.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table} FOR VALUES "
            f"FROM ('{month.first.isoformat()}') TO ('{month.next_first.isoformat()}')"
        )
    )
    suffix = f"{month.year:04d}{month.month:02d}"
    session.execute(text(_RENAME_INDEXES.format(partition=name, suffix=suffix)))
    return True


def count_rows(session: Session, partition: Partition) -> int:
    """Rows in one partition."""
    return int(session.scalar(text(f"SELECT count(*) FROM {partition.name}")) or 0)


def _frozen_name(partition: Partition) -> str:
    return f"{partition.name}_frozen"


def freeze(session: Session, partition: Partition) -> None:
    """Refuse any new or changed row in the partition from now on (``CHECK (false) NOT
    VALID``: existing rows are not checked, every insert or update is), so that what is
    exported afterwards is all it will ever hold. Idempotent."""
    if is_frozen(session, partition):
        return
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    session.execute(
        text(
            f"ALTER TABLE {partition.name} ADD CONSTRAINT {_frozen_name(partition)} "
            "CHECK (false) NOT VALID"
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


def detach_and_drop(session: Session, partition: Partition) -> None:
    """Detach the partition from its parent and drop it (no row is touched one by one)."""
    session.execute(text("SET LOCAL lock_timeout = '10s'"))
    session.execute(text(f"ALTER TABLE {partition.table} DETACH PARTITION {partition.name}"))
    session.execute(text(f"DROP TABLE {partition.name}"))


def partition_bytes(session: Session, partition: Partition) -> int:
    """On-disk size of the partition with its indexes and TOAST."""
    return int(
        session.scalar(
            text("SELECT pg_total_relation_size(CAST(:n AS regclass))"), {"n": partition.name}
        )
        or 0
    )
