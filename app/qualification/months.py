"""The qualification rule's calendar: only closed months qualify; reasons in order.

The month type itself is the kernel's ``app.months.Month``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from app.models.enums import DisqualificationReason
from app.months import Month, local_today

# The order in which reasons are listed in disqualification_reason (the order).
REASON_ORDER: tuple[DisqualificationReason, ...] = (
    DisqualificationReason.INACTIVE,
    DisqualificationReason.MISSING_DATA,
    DisqualificationReason.BELOW_THRESHOLD,
    DisqualificationReason.INVALID_PHONE,
)


class QualificationError(Exception):
    """A qualification request that cannot be honoured (the message is for operators)."""


class MonthNotClosed(QualificationError):
    pass


def ensure_closed(month: Month, tz: ZoneInfo, now: datetime | None = None) -> None:
    """Refuse a month that is not over yet: its last day's balances are not final."""
    today = local_today(tz, now)
    if today <= month.last:
        raise MonthNotClosed(
            f"month {month} is not closed yet: its last day {month.last.isoformat()} is not "
            f"past in {tz.key} (today there is {today.isoformat()}); "
            f"it can be qualified from {month.next_first.isoformat()}"
        )
