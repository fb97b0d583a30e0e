"""SQL of the customer master data (the caller owns the transaction; nothing here commits).

A batch of rows is COPYed into a temp table and merged with one
``INSERT ... ON CONFLICT (account_number) DO UPDATE ... WHERE <something changed>``, so
a re-import of the same file changes nothing (no update, no new ``updated_at``).
``updated_at`` and ``last_verified`` (when the phone verdict was computed: now, in bulk)
are set on every inserted or changed row. Customers erased under GDPR
(``anonymised_at`` set) are never re-filled from a file. Before the merge, the batch
says which of its accounts are erased and how many customers each field changes for
(counts only: the import's audit row never carries values).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg2.extensions
from sqlalchemy import func, update
from sqlalchemy.orm import Session

from app.customers.validation import CustomerRow
from app.db import audit
from app.models import JobRun
from app.models.enums import RunStatus

JOB = "customer_import"
SERVICE = "CustomerImport"

# Columns a file sets; the merge compares them to tell a change from a re-import.
FIELDS = (
    "first_name", "last_name", "email", "phone_number", "account_type", "is_active",
    "phone_raw", "email_raw",
)  # fmt: skip
STAGE_COLUMNS = ", ".join(("account_number", *FIELDS, "phone_status", "phone_is_valid_mobile"))

_STAGE_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS customer_stage ("
    "account_number varchar(50), first_name varchar(100), last_name varchar(100), "
    "email varchar(255), phone_number varchar(20), account_type varchar(50), "
    "is_active boolean, phone_raw varchar(50), email_raw varchar(255), "
    "phone_status varchar(20), phone_is_valid_mobile boolean"
    ") ON COMMIT DELETE ROWS"
)

_ERASED = (
    "SELECT s.account_number FROM customer_stage s JOIN customers c "
    "ON c.account_number = s.account_number WHERE c.anonymised_at IS NOT NULL"
)

# Per field: how many existing (not erased) customers of the batch it changes.
_CHANGED = (
    "SELECT "
    + ", ".join(f"count(*) FILTER (WHERE c.{f} IS DISTINCT FROM s.{f})" for f in FIELDS)
    + " FROM customer_stage s JOIN customers c ON c.account_number = s.account_number "
    "WHERE c.anonymised_at IS NULL"
)

_SET = ",\n        ".join(
    f"{f} = EXCLUDED.{f}" for f in (*FIELDS, "phone_status", "phone_is_valid_mobile")
)
MERGE = f"""
WITH merged AS (
    INSERT INTO customers AS c ({STAGE_COLUMNS}, updated_at, last_verified)
    SELECT {STAGE_COLUMNS}, LOCALTIMESTAMP, LOCALTIMESTAMP FROM customer_stage
    ON CONFLICT (account_number) DO UPDATE SET
        {_SET},
        updated_at = LOCALTIMESTAMP, last_verified = LOCALTIMESTAMP
    WHERE c.anonymised_at IS NULL
      AND ({", ".join(f"c.{f}" for f in FIELDS)})
          IS DISTINCT FROM
          ({", ".join(f"EXCLUDED.{f}" for f in FIELDS)})
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged
"""


@dataclass(frozen=True, slots=True)
class MergeCounts:
    """What one merged batch did; rows in none of the three were unchanged."""

    inserted: int
    updated: int
    erased: list[str] = field(default_factory=list)  # accounts erased under GDPR: left alone
    changed: dict[str, int] = field(default_factory=dict)  # field -> customers it changed

    @property
    def erased_count(self) -> int:
        return len(self.erased)


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
            r.phone_raw,
            r.email_raw,
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
        cur.execute(_STAGE_TABLE)
        cur.copy_expert(f"COPY customer_stage ({STAGE_COLUMNS}) FROM STDIN", buffer)
        cur.execute(_ERASED)
        erased = [row[0] for row in cur.fetchall()]
        cur.execute(_CHANGED)
        changed = cur.fetchone()
        cur.execute(MERGE)
        counts = cur.fetchone()
        cur.execute("TRUNCATE customer_stage")
    assert counts is not None and changed is not None
    return MergeCounts(
        int(counts[0]),
        int(counts[1]),
        erased,
        {f: int(n) for f, n in zip(FIELDS, changed, strict=True) if n},
    )


def start_run(session: Session, run_key: str, triggered_by: str) -> tuple[uuid.UUID, uuid.UUID]:
    """The import's ``job_runs`` row (job ``customer_import``): (run id, correlation id)."""
    run = JobRun(job=JOB, run_key=run_key[:50], triggered_by=triggered_by[:100])
    session.add(run)
    session.flush()
    session.refresh(run)
    return run.id, run.correlation_id


def finish_run(
    session: Session, run_id: uuid.UUID, stats: dict[str, Any], error: str | None = None
) -> None:
    """Close the run: Finished with its counts, or Failed with ``error``."""
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            status=str(RunStatus.FAILED if error else RunStatus.FINISHED),
            finished_at=func.localtimestamp(),
            stats=stats,
            error=error,
        )
    )


def audit_import(
    session: Session,
    run_id: uuid.UUID,
    correlation_id: uuid.UUID,
    user_id: str,
    details: dict[str, Any],
) -> None:
    """The import's own audit row: counts and which fields changed, never a value."""
    audit.record(
        session,
        entity_type="CustomerImport",
        entity_id=run_id,
        operation="PROCESS",
        correlation_id=correlation_id,
        user_id=user_id[:100],
        service_name=SERVICE,
        details=details,
    )
