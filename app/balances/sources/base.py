"""The balance-source interface: many accounts in, one answer per account out.

Every account asked about gets exactly one answer: a ``Balance`` (an exact decimal with
at most two places, as of some date) or a ``Missing`` with a machine-readable reason.
A source never invents a value: an account it cannot answer for is ``Missing``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable


class MissingReason(StrEnum):
    """Why a source has no balance for an account (a Prometheus label: no personal data)."""

    NOT_FOUND = "not_found"  # the source does not know the account
    INVALID_BALANCE = "invalid_balance"  # not a number, or more than two decimals
    WRONG_CURRENCY = "wrong_currency"  # the extract gave a currency other than ILS
    WRONG_DATE = "wrong_date"  # the extract's row is for another date
    UNAVAILABLE = "unavailable"  # the source failed (timeouts, 5xx after retries)


@dataclass(frozen=True, slots=True)
class Balance:
    account_number: str
    balance: Decimal
    as_of: date  # the date the source says the balance is for


@dataclass(frozen=True, slots=True)
class Missing:
    account_number: str
    reason: MissingReason
    detail: str = ""  # no personal data (no balances, names or numbers)


Answer = Balance | Missing


class SourceError(Exception):
    """The source cannot answer at all (configuration, outage): the batch is retried."""


class SourceNotConfigured(SourceError):
    """No source can be built from the settings (CORE_BANKING_URL unset): an operator's
    fix, never worth a retry."""


@runtime_checkable
class BalanceSource(Protocol):
    """Fetches end-of-day balances for many accounts as of one business date."""

    name: str  # short label for metrics and run stats ("core_banking", "eod_file")

    def fetch(self, accounts: Sequence[str], as_of: date) -> Mapping[str, Answer]:
        """One answer per account in ``accounts`` (keyed by account number)."""
        ...

    def close(self) -> None:
        """Release pooled connections and files."""
        ...
