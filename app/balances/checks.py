"""Turning source answers into balance-check rows, and writing them in bulk.

``evaluate`` decides, per customer, whether there is a check to write (and its flags) or
a reason there is none. ``write_checks`` stores rows with one COPY: optimistically
straight into ``daily_balance_checks`` (the common case: nobody wrote these days yet),
and, when a concurrent or redelivered shard already wrote one of them (unique
violation), again through a temp table with ``INSERT ... ON CONFLICT DO NOTHING``.
Both paths fire the statement-level audit trigger once per statement, which writes one
audit row per inserted check, carrying the row's correlation id.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import cast

import psycopg2.errors
import psycopg2.extensions
from sqlalchemy.orm import Session

from app.balances.sources.base import Answer, Balance, Missing, MissingReason

COLUMNS = (
    "customer_id, check_date, balance, threshold, passes_threshold, "
    "check_timestamp, data_quality_flag, correlation_id"
)

# data_quality_flag values (VARCHAR(100); several are joined with ';').
FLAG_NEGATIVE = "NEGATIVE_BALANCE"
FLAG_STALE = "STALE_AS_OF"


class FutureDateError(ValueError):
    """A check date after today in the bank's time zone: balances are not known yet."""


def refuse_future(check_date: date, today: date) -> None:
    if check_date > today:
        raise FutureDateError(
            f"check date {check_date.isoformat()} is in the future "
            f"(today is {today.isoformat()} in the bank's time zone)"
        )


@dataclass(frozen=True, slots=True)
class CheckRow:
    customer_id: uuid.UUID
    check_date: date
    balance: Decimal
    threshold: Decimal
    flag: str | None

    @property
    def passes(self) -> bool:
        # Exact decimal comparison: 14999.99 fails, 15000.00 passes.
        return self.balance >= self.threshold


def evaluate(
    customer_id: uuid.UUID,
    answer: Answer,
    check_date: date,
    threshold: Decimal,
    max_stale_days: int,
) -> CheckRow | Missing:
    """The check to write for one customer, or why there is none."""
    if isinstance(answer, Missing):
        return answer
    assert isinstance(answer, Balance)
    flags: list[str] = []
    if answer.as_of > check_date:
        return Missing(answer.account_number, MissingReason.WRONG_DATE, "as-of date is later")
    if answer.as_of < check_date:
        age = (check_date - answer.as_of).days
        if age > max_stale_days:
            return Missing(
                answer.account_number, MissingReason.WRONG_DATE, f"as-of date {age} days old"
            )
        flags.append(f"{FLAG_STALE}:{answer.as_of.isoformat()}")
    if answer.balance < 0:
        flags.append(FLAG_NEGATIVE)
    return CheckRow(customer_id, check_date, answer.balance, threshold, ";".join(flags) or None)


def _copy_buffer(rows: Sequence[CheckRow], correlation_id: uuid.UUID, now: datetime) -> io.StringIO:
    stamp = now.isoformat(sep=" ")
    corr = str(correlation_id)
    lines = [
        f"{r.customer_id}\t{r.check_date.isoformat()}\t{r.balance}\t{r.threshold}\t"
        f"{'t' if r.passes else 'f'}\t{stamp}\t{r.flag or chr(92) + 'N'}\t{corr}\n"
        for r in rows
    ]
    return io.StringIO("".join(lines))


def write_checks(session: Session, rows: Sequence[CheckRow], correlation_id: uuid.UUID) -> int:
    """Insert ``rows`` (skipping days already checked); returns how many were inserted."""
    if not rows:
        return 0
    now = datetime.now(UTC).replace(tzinfo=None)
    # COPY needs psycopg2's own cursor (copy_expert), on the session's connection.
    dbapi = cast(psycopg2.extensions.connection, session.connection().connection.dbapi_connection)
    with dbapi.cursor() as cur:
        cur.execute("SAVEPOINT balance_copy")
        try:
            cur.copy_expert(
                f"COPY daily_balance_checks ({COLUMNS}) FROM STDIN",
                _copy_buffer(rows, correlation_id, now),
            )
            cur.execute("RELEASE SAVEPOINT balance_copy")
            return len(rows)
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT balance_copy")
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS balance_check_stage "
            "(LIKE daily_balance_checks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE balance_check_stage")
        cur.copy_expert(
            f"COPY balance_check_stage ({COLUMNS}) FROM STDIN",
            _copy_buffer(rows, correlation_id, now),
        )
        cur.execute(
            f"INSERT INTO daily_balance_checks ({COLUMNS}) "
            f"SELECT {COLUMNS} FROM balance_check_stage "
            "ON CONFLICT (customer_id, check_date) DO NOTHING"
        )
        inserted = cur.rowcount
        cur.execute("TRUNCATE balance_check_stage")
        return int(inserted)
