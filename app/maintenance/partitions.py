"""Monthly partitions kept ahead (issue 21): the current month and the next ones exist.

Migration 0009 partitions daily_balance_checks (by check_date), audit_log (by its UTC
"timestamp") and system_events (by created_at) by month, without a default partition:
a row outside every partition fails loudly. ``ensure_ahead`` creates any missing
partition of the hot window (the 12 months before the current one) through
``months_ahead`` months after the current; it is
idempotent (existing partitions are left alone) and run daily by the maintenance kick
``maintenance.partitions_kick`` and at the start of every retention run. Retention
drops the old ones (app/maintenance/retention.py). Neither needs ownership of the
tables: both call the owner's definer functions of migration 0011 (docs/security.md).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from app.maintenance.repository import partitions as repository
from app.maintenance.repository.partitions import PARTITIONED, Partition
from app.months import Month

HOT_MONTHS = 12  # the hot year behind the current month

__all__ = ["PARTITIONED", "Partition", "ensure_ahead", "ensure_range", "months_between"]


def months_between(first: Month, last: Month) -> list[Month]:
    """``first`` .. ``last`` inclusive."""
    out: list[Month] = []
    month = first
    while (month.year, month.month) <= (last.year, last.month):
        out.append(month)
        month = Month.of(month.next_first)
    return out


def ensure_range(session: Session, first: Month, last: Month) -> list[str]:
    """Create every missing partition of every partitioned table for ``first`` .. ``last``;
    returns the names created (in the caller's transaction). Runs as the maintenance role:
    the creation itself is the owner's ``pn_ensure_partitions`` (migration 0011)."""
    created = []
    for table in PARTITIONED:
        created += repository.create_partitions(session, table, first, last)
    return created


def ensure_ahead(
    session: Session, today: date, months_ahead: int = 2, months_back: int = HOT_MONTHS
) -> list[str]:
    """The hot window's partitions (the ``months_back`` months before the current one:
    late files, gap repair, a replayed month) through ``months_ahead`` months ahead."""
    current = Month.of(today)
    first = current
    for _ in range(months_back):
        first = first.previous()
    last = current
    for _ in range(months_ahead):
        last = Month.of(last.next_first)
    return ensure_range(session, first, last)
