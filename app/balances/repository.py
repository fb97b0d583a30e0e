"""SQL of the balance-check stage: shard ranges, unchecked customers, shard counts.

Sharding: a customer's shard is a stable function of its id. Ids are random (v4 UUIDs
from ``gen_random_uuid()``), so the id's leading 32 bits already are a uniform hash;
shard k of n owns the id range [k * 2^32 / n, (k+1) * 2^32 / n) of those bits. A range
(rather than ``hash(id) % n``) lets each shard walk only its own slice of the primary
key index instead of every shard scanning every customer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_SPACE = 1 << 32


def shard_of(customer_id: uuid.UUID, shard_count: int) -> int:
    return (customer_id.int >> 96) * shard_count // _SPACE


@dataclass(frozen=True, slots=True)
class IdRange:
    low: uuid.UUID  # inclusive
    high: uuid.UUID | None  # exclusive; None = to the end


def shard_range(shard: int, shard_count: int) -> IdRange:
    if not 0 <= shard < shard_count:
        raise ValueError(f"shard {shard} is not in 0..{shard_count - 1}")

    def bound(k: int) -> int:
        return -(-k * _SPACE // shard_count)  # ceil: the first prefix of shard k

    low = uuid.UUID(int=bound(shard) << 96)
    high = None if shard == shard_count - 1 else uuid.UUID(int=bound(shard + 1) << 96)
    return IdRange(low, high)


FULL_RANGE = IdRange(uuid.UUID(int=0), None)

_RANGE_SQL = "c.id >= :low AND (CAST(:high AS uuid) IS NULL OR c.id < CAST(:high AS uuid))"


def _range_params(r: IdRange) -> dict[str, Any]:
    return {"low": r.low, "high": r.high}


def unchecked_customers(
    session: Session, day: date, id_range: IdRange, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """The next ``limit`` active customers in the range with no check on ``day`` (by id)."""
    rows = session.execute(
        text(
            f"""
            SELECT c.id, c.account_number FROM customers c
            WHERE c.is_active AND {_RANGE_SQL}
              AND (CAST(:after AS uuid) IS NULL OR c.id > CAST(:after AS uuid))
              AND NOT EXISTS (SELECT 1 FROM daily_balance_checks d
                              WHERE d.customer_id = c.id AND d.check_date = :day)
            ORDER BY c.id LIMIT :limit
            """
        ),
        {**_range_params(id_range), "after": after, "day": day, "limit": limit},
    )
    return [(r[0], r[1]) for r in rows]


def count_active(session: Session, id_range: IdRange = FULL_RANGE) -> int:
    return int(
        session.execute(
            text(f"SELECT count(*) FROM customers c WHERE c.is_active AND {_RANGE_SQL}"),
            _range_params(id_range),
        ).scalar_one()
    )


def range_counts(session: Session, day: date, id_range: IdRange) -> dict[str, int]:
    """Exact counts of a shard's day, from the table (redeliveries cannot skew them)."""
    row = session.execute(
        text(
            f"""
            SELECT count(*) AS customers,
                   count(d.id) AS checked,
                   count(d.id) FILTER (WHERE d.passes_threshold) AS passed,
                   count(d.id) FILTER (WHERE d.data_quality_flag IS NOT NULL) AS flagged
            FROM customers c
            LEFT JOIN daily_balance_checks d ON d.customer_id = c.id AND d.check_date = :day
            WHERE c.is_active AND {_RANGE_SQL}
            """
        ),
        {**_range_params(id_range), "day": day},
    ).one()
    counts = {k: int(v) for k, v in row._mapping.items()}
    counts["missing"] = counts["customers"] - counts["checked"]
    return counts
