"""The send window in the bank's time zone (docs/design.md decision 9)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.notifications.window import SendWindow, WindowError, parse_window

TZ = ZoneInfo("Asia/Jerusalem")
DEFAULT = SendWindow(tuple(parse_window("sun-thu 09:00-20:00; fri 09:00-13:00")), TZ)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ).astimezone(UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (local(2026, 10, 4, 9, 0), True),  # Sunday at opening
        (local(2026, 10, 4, 8, 59), False),
        (local(2026, 10, 8, 19, 59), True),  # Thursday
        (local(2026, 10, 8, 20, 0), False),  # closes at 20:00
        (local(2026, 10, 9, 12, 59), True),  # Friday morning
        (local(2026, 10, 9, 13, 0), False),  # Friday closes at 13:00
        (local(2026, 10, 9, 15, 0), False),
        (local(2026, 10, 10, 12, 0), False),  # Saturday: never
        (local(2026, 3, 27, 10, 0), True),  # Friday after the DST change (UTC+3)
    ],
)
def test_is_open(when: datetime, is_open: bool) -> None:
    assert DEFAULT.is_open(when) is is_open


def test_friday_afternoon_waits_until_sunday_morning() -> None:
    assert DEFAULT.next_open(local(2026, 10, 9, 13, 30)) == local(2026, 10, 11, 9, 0)


def test_saturday_waits_until_sunday_morning_and_naive_means_utc() -> None:
    saturday = local(2026, 10, 10, 22, 0)
    assert DEFAULT.next_open(saturday.replace(tzinfo=None)) == local(2026, 10, 11, 9, 0)
    assert DEFAULT.seconds_until_open(saturday) == 11 * 3600


def test_open_now_is_now_and_evening_waits_for_the_morning() -> None:
    now = local(2026, 10, 5, 10, 0)
    assert DEFAULT.next_open(now) == now and DEFAULT.seconds_until_open(now) == 0
    assert DEFAULT.next_open(local(2026, 10, 5, 21, 0)) == local(2026, 10, 6, 9, 0)


def test_window_follows_daylight_saving_time() -> None:
    # 09:00 local is 07:00 UTC in winter (UTC+2) and 06:00 UTC in summer (UTC+3).
    assert DEFAULT.next_open(datetime(2026, 1, 4, 0, 0, tzinfo=UTC)).hour == 7
    assert DEFAULT.next_open(datetime(2026, 7, 5, 0, 0, tzinfo=UTC)).hour == 6  # type: ignore[union-attr]


def test_no_window_at_all() -> None:
    assert SendWindow((), TZ).next_open(datetime.now(UTC)) is None


@pytest.mark.parametrize("rule", ["sun-xyz 09:00-10:00", "mon 10:00-09:00", "mon nine-ten"])
def test_bad_rules_are_refused(rule: str) -> None:
    with pytest.raises(WindowError):
        parse_window(rule)
