"""SQL of the customer master data (the caller owns the transaction; nothing here commits).

A batch of valid rows is COPYed into a temp table and merged with one
``INSERT ... ON CONFLICT (account_number) DO UPDATE ... WHERE <something changed>``, so
a re-import of the same file changes nothing (no update, no new ``updated_at``).
``updated_at`` and ``last_verified`` (when the phone verdict was computed: now, in bulk)
are set on every inserted or changed row. Customers erased under GDPR
(``anonymised_at`` set) are never re-filled from a file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import psycopg2.extensions
from sqlalchemy.orm import Session

from app.customers.validation import CustomerRow

STAGE_COLUMNS = (
    "account_number, first_name, last_name, email, phone_number, account_type, is_active, "
    "phone_status, phone_is_valid_mobile"
)

MERGE = f"""
WITH merged AS (
    INSERT INTO customers AS c ({STAGE_COLUMNS}, updated_at, last_verified)
    SELECT {STAGE_COLUMNS}, LOCALTIMESTAMP, LOCALTIMESTAMP FROM customer_stage
    ON CONFLICT (account_number) DO UPDATE SET
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        email = EXCLUDED.email, phone_number = EXCLUDED.phone_number,
        account_type = EXCLUDED.account_type, is_active = EXCLUDED.is_active,
        phone_status = EXCLUDED.phone_status,
        phone_is_valid_mobile = EXCLUDED.phone_is_valid_mobile,
        updated_at = LOCALTIMESTAMP, last_verified = LOCALTIMESTAMP
    WHERE c.anonymised_at IS NULL
      AND (c.first_name, c.last_name, c.email, c.phone_number, c.account_type, c.is_active)
          IS DISTINCT FROM
          (EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email, EXCLUDED.phone_number,
           EXCLUDED.account_type, EXCLUDED.is_active)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged
"""


@dataclass(frozen=True, slots=True)
class MergeCounts:
    """What one merged batch did; rows in none of the three were unchanged."""

    inserted: int
    updated: int
    erased: int  # rows of customers erased under GDPR: left as they are


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\")


def _copy_buffer(batch: Sequence[CustomerRow]) -> io.StringIO:
    buffer = io.StringIO()
    for r in batch:
        fields = (
            r.account_number,
            r.first_name,
            r.last_name,
            r.email,
            r.phone_number,
            r.account_type,
            "t" if r.is_active else "f",
            str(r.phone_status),
            "t" if r.phone_is_valid_mobile else "f",
        )
        buffer.write("\t".join(_copy_text(f) for f in fields) + "\n")
    buffer.seek(0)
    return buffer


def merge_batch(session: Session, batch: Sequence[CustomerRow]) -> MergeCounts:
    """Upsert ``batch`` by account number (one COPY, one merge statement)."""
    buffer = _copy_buffer(batch)
    dbapi = cast(psycopg2.extensions.connection, session.connection().connection.dbapi_connection)
    with dbapi.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS customer_stage ("
            "account_number varchar(50), first_name varchar(100), last_name varchar(100), "
            "email varchar(255), phone_number varchar(20), account_type varchar(50), "
            "is_active boolean, phone_status varchar(20), phone_is_valid_mobile boolean"
            ") ON COMMIT DELETE ROWS"
        )
        cur.copy_expert(f"COPY customer_stage ({STAGE_COLUMNS}) FROM STDIN", buffer)
        cur.execute(
            "SELECT count(*) FROM customer_stage s JOIN customers c "
            "ON c.account_number = s.account_number WHERE c.anonymised_at IS NOT NULL"
        )
        erased = cur.fetchone()
        cur.execute(MERGE)
        counts = cur.fetchone()
        cur.execute("TRUNCATE customer_stage")
    assert counts is not None and erased is not None
    return MergeCounts(int(counts[0]), int(counts[1]), int(erased[0]))
