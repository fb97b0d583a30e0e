"""The business calendar: months and today's date in the bank's time zone.

A month is identified by its first day (``qualification_month``); operators write it
``YYYY-MM``. Days are business dates in the bank's time zone (docs/decisions.md), so
daylight-saving months have their ordinary number of calendar days: counting is done on
dates, never on timestamps. ``Month`` is the one month type of every stage; it travels
between processes as its ``str()`` (``YYYY-MM``) and is read back with ``Month.parse``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


class InvalidMonth(ValueError):
    """Not a ``YYYY-MM`` month (the message is for operators)."""


@dataclass(frozen=True, slots=True)
class Month:
    """A calendar month: ``first`` .. ``last`` inclusive, ``next_first`` exclusive."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH_RE.match(text.strip())
        if not match:
            raise InvalidMonth(f"month must be written YYYY-MM, got {text!r}")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12 or year < 1900:
            raise InvalidMonth(f"no such month: {text!r}")
        return cls(year, month)

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        """Calendar days (28..31, leap years included)."""
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def last(self) -> date:
        return date(self.year, self.month, self.days)

    @property
    def next_first(self) -> date:
        return self.last + timedelta(days=1)

    def previous(self) -> Month:
        return Month.of(self.first - timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def lock_key(self) -> int:
        """Second key of the month's advisory locks (qualification, outbox)."""
        return self.year * 100 + self.month


def local_today(tz: ZoneInfo, now: datetime | None = None) -> date:
    """Today's business date in the bank's time zone (``now`` is aware, or naive UTC)."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(tz).date()


def is_closed(month: Month, tz: ZoneInfo, now: datetime | None = None) -> bool:
    """True once the month's last day is past in the bank's time zone."""
    return local_today(tz, now) > month.last


def closed_months(tz: ZoneInfo, window: int, now: datetime | None = None) -> list[Month]:
    """The ``window`` most recent closed months, oldest first (the catch-up candidates)."""
    months: list[Month] = []
    month = Month.of(local_today(tz, now)).previous()
    for _ in range(window):
        months.append(month)
        month = month.previous()
    return list(reversed(months))
