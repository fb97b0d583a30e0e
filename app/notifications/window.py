"""The send window (docs/design.md decision 9): SMS go out only inside it, in the bank's zone.

The rule string is ``"sun-thu 09:00-20:00; fri 09:00-13:00"``: day names or ranges
(``mon`` .. ``sun``; a range may wrap, ``sun-thu`` is Sunday to Thursday), then a local
time range (``24:00`` means the end of the day). Days not named (Saturday by default)
have no window. Times are wall-clock in BANK_TIMEZONE, so the window follows
daylight-saving changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.config import Settings, get_settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # Python's weekday() order


class WindowError(ValueError):
    """The send-window rule cannot be parsed."""


@dataclass(frozen=True)
class Interval:
    weekday: int
    start: time
    end: time


def _days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        part = part.strip().lower()
        if "-" in part:
            first, last = (p.strip()[:3] for p in part.split("-", 1))
            if first not in DAYS or last not in DAYS:
                raise WindowError(f"unknown day in {part!r}")
            i = DAYS.index(first)
            while True:
                days.append(i)
                if i == DAYS.index(last):
                    break
                i = (i + 1) % 7
        elif part[:3] in DAYS:
            days.append(DAYS.index(part[:3]))
        else:
            raise WindowError(f"unknown day {part!r}")
    return days


def parse_window(rule: str) -> list[Interval]:
    intervals: list[Interval] = []
    for clause in filter(None, (c.strip() for c in rule.split(";"))):
        try:
            days, hours = clause.rsplit(None, 1)
            start_s, end_s = hours.split("-")
            start = time.fromisoformat(start_s)
            end = time.max if end_s == "24:00" else time.fromisoformat(end_s)
        except ValueError:
            raise WindowError(
                f"cannot read {clause!r} (expected e.g. 'sun-thu 09:00-20:00')"
            ) from None
        if end <= start:
            raise WindowError(f"{clause!r}: the window must end after it starts")
        intervals.extend(Interval(d, start, end) for d in _days(days))
    return intervals


def _aware_utc(now: datetime) -> datetime:
    # Naive datetimes in this system are UTC (every column is UTC).
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


@dataclass(frozen=True)
class SendWindow:
    intervals: tuple[Interval, ...]
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> SendWindow:
        settings = settings or get_settings()
        return cls(tuple(parse_window(settings.sms_send_window)), settings.tz)

    def _local_spans(self, now_utc: datetime) -> list[tuple[datetime, datetime]]:
        local_today = now_utc.astimezone(self.tz).date()
        spans = []
        for offset in range(-1, 8):
            day = local_today + timedelta(days=offset)
            for iv in self.intervals:
                if iv.weekday == day.weekday():
                    start = datetime.combine(day, iv.start, self.tz).astimezone(UTC)
                    end = datetime.combine(day, iv.end, self.tz).astimezone(UTC)
                    spans.append((start, end))
        return sorted(spans)

    def is_open(self, now: datetime) -> bool:
        now_utc = _aware_utc(now)
        return any(start <= now_utc < end for start, end in self._local_spans(now_utc))

    def next_open(self, now: datetime) -> datetime | None:
        """``now`` if the window is open, else when it next opens (aware UTC); None: never."""
        now_utc = _aware_utc(now)
        for start, end in self._local_spans(now_utc):
            if end > now_utc:
                return max(start, now_utc)
        return None

    def seconds_until_open(self, now: datetime) -> float | None:
        opens = self.next_open(now)
        return None if opens is None else (opens - _aware_utc(now)).total_seconds()
