"""Turning source answers into balance-check rows.

``evaluate`` decides, per customer, whether there is a check to write (and its flags) or
a reason there is none. ``repository.write_checks`` stores the rows (one COPY).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from app.balances.sources.base import Answer, Balance, Missing, MissingReason

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
