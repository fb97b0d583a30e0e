"""Bulk phone re-validation before a qualification run.

``customers.phone_status`` / ``phone_is_valid_mobile`` hold the ``phonenumbers`` verdict,
and ``last_verified`` says when it was computed. A customer whose row changed after that
(``last_verified < updated_at``) or was never verified is classified again here, in
chunks: one SELECT of id + number, ``app.phones.classify`` in Python, one
``UPDATE ... FROM unnest(...)`` per chunk (SQL: ``repository.phone_verdicts``).
Customers whose verdict is current cost no Python at all, so a run over unchanged
customers is pure SQL.

Only customers the month evaluates (at least one check in it) are considered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from app.months import Month
from app.phones import classify
from app.qualification.repository import phone_verdicts

FIRST_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class ChunkResult:
    last_id: str | None  # None: nothing left
    rows: int = 0
    updated: int = 0
    by_status: Counter[str] = field(default_factory=Counter)


def revalidate_chunk(
    session: Session, month: Month, *, after: str, limit: int, region: str
) -> ChunkResult:
    """Re-validate the next ``limit`` stale customers with an id greater than ``after``."""
    rows = phone_verdicts.stale_chunk(session, month, after=after, limit=limit)
    if not rows:
        return ChunkResult(last_id=None)
    ids: list[str] = []
    phones: list[str | None] = []
    statuses: list[str] = []
    valid: list[bool] = []
    result = ChunkResult(last_id=rows[-1][0], rows=len(rows))
    for customer_id, phone_number, phone_raw in rows:
        # A number the import could not use is kept in phone_raw: it is still INVALID,
        # not MISSING. The update is guarded by phone_number, which did not change.
        verdict = classify(phone_number if phone_number is not None else phone_raw, region)
        ids.append(customer_id)
        phones.append(phone_number)
        statuses.append(str(verdict.status))
        valid.append(verdict.is_valid_mobile)
        result.by_status[str(verdict.status)] += 1
    result.updated = phone_verdicts.apply_verdicts(session, ids, phones, statuses, valid)
    return result
