"""SQL of the phone re-validation before a qualification run (on ``customers``).

A customer whose row changed after its verdict was computed (``last_verified <
updated_at``) or that was never verified is stale. Only customers the month evaluates
(at least one check in it) are considered. The caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.months import Month

_STALE = """
    (c.last_verified IS NULL OR c.last_verified < c.updated_at)
    AND EXISTS (SELECT 1 FROM daily_balance_checks d
                WHERE d.customer_id = c.id
                  AND d.check_date >= :first AND d.check_date < :next_first)
"""

_COUNT_STALE = text(f"SELECT count(*) FROM customers c WHERE {_STALE}")

_NEXT_CHUNK = text(
    f"""
    SELECT c.id::text AS id, c.phone_number, c.phone_raw
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


def count_stale(session: Session, month: Month) -> int:
    """How many evaluated customers need their phone verdict recomputed."""
    params = {"first": month.first, "next_first": month.next_first}
    return int(session.execute(_COUNT_STALE, params).scalar_one())


def stale_chunk(
    session: Session, month: Month, *, after: str, limit: int
) -> list[tuple[str, str | None, str | None]]:
    """The next ``limit`` stale customers with an id greater than ``after``: (id, number,
    the number as given when it was not valid)."""
    params = {"first": month.first, "next_first": month.next_first, "after": after}
    rows = session.execute(_NEXT_CHUNK, {**params, "limit": limit}).all()
    return [(row.id, row.phone_number, row.phone_raw) for row in rows]


def apply_verdicts(
    session: Session,
    ids: Sequence[str],
    phones: Sequence[str | None],
    statuses: Sequence[str],
    valid: Sequence[bool],
) -> int:
    """Store the verdicts (one UPDATE); returns how many customers were updated."""
    applied = session.execute(
        _APPLY,
        {
            "ids": list(ids),
            "phones": list(phones),
            "statuses": list(statuses),
            "valid": list(valid),
        },
    )
    return int(getattr(applied, "rowcount", 0) or 0)
