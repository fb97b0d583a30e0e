"""Bulk phone re-validation before a qualification run.

``customers.phone_status`` / ``phone_is_valid_mobile`` hold the ``phonenumbers`` verdict,
and ``last_verified`` says when it was computed. A customer whose row changed after that
(``last_verified < updated_at``) or was never verified is classified again here, in
chunks: one SELECT of id + number, ``app.phones.classify`` in Python, one
``UPDATE ... FROM unnest(...)`` per chunk. Customers whose verdict is current cost no
Python at all, so a run over unchanged customers is pure SQL.

Only customers the month evaluates (at least one check in it) are considered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.months import Month
from app.phones import classify

_STALE = """
    (c.last_verified IS NULL OR c.last_verified < c.updated_at)
    AND EXISTS (SELECT 1 FROM daily_balance_checks d
                WHERE d.customer_id = c.id
                  AND d.check_date >= :first AND d.check_date < :next_first)
"""

_COUNT_STALE = text(f"SELECT count(*) FROM customers c WHERE {_STALE}")

_NEXT_CHUNK = text(
    f"""
    SELECT c.id::text AS id, c.phone_number
    FROM customers c
    WHERE c.id > CAST(:after AS uuid) AND {_STALE}
    ORDER BY c.id
    LIMIT :limit
    """
)

# The number must still be the one that was classified (a concurrent change wins and is
# re-validated next time). last_verified never lags updated_at, even if a writer's clock
# put updated_at in the future, so an unchanged customer is not re-validated forever.
_APPLY = text(
    """
    UPDATE customers c
    SET phone_status = v.status,
        phone_is_valid_mobile = v.valid,
        last_verified = GREATEST(LOCALTIMESTAMP, c.updated_at)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:phones AS text[]),
                CAST(:statuses AS text[]), CAST(:valid AS boolean[]))
         AS v(id, phone, status, valid)
    WHERE c.id = v.id AND c.phone_number IS NOT DISTINCT FROM v.phone
    """
)

FIRST_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class ChunkResult:
    last_id: str | None  # None: nothing left
    rows: int = 0
    updated: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


def count_stale(session: Session, month: Month) -> int:
    """How many evaluated customers need their phone verdict recomputed."""
    params = {"first": month.first, "next_first": month.next_first}
    return int(session.execute(_COUNT_STALE, params).scalar_one())


def revalidate_chunk(
    session: Session, month: Month, *, after: str, limit: int, region: str
) -> ChunkResult:
    """Re-validate the next ``limit`` stale customers with an id greater than ``after``."""
    params = {"first": month.first, "next_first": month.next_first, "after": after}
    rows = session.execute(_NEXT_CHUNK, {**params, "limit": limit}).all()
    if not rows:
        return ChunkResult(last_id=None)
    ids: list[str] = []
    phones: list[str | None] = []
    statuses: list[str] = []
    valid: list[bool] = []
    result = ChunkResult(last_id=rows[-1].id, rows=len(rows))
    for row in rows:
        verdict = classify(row.phone_number, region)
        ids.append(row.id)
        phones.append(row.phone_number)
        statuses.append(str(verdict.status))
        valid.append(verdict.is_valid_mobile)
        result.by_status[str(verdict.status)] += 1
    applied = session.execute(
        _APPLY, {"ids": ids, "phones": phones, "statuses": statuses, "valid": valid}
    )
    result.updated = int(getattr(applied, "rowcount", 0) or 0)
    return result
