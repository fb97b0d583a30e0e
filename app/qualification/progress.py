"""In-month progress: who is still on track, who dropped out, and on which day.

A customer is on track while every day so far has a check that passes the threshold.
The day a customer drops out is the first day that fails or has no check; one pass over
the month's checks (ordered by the (customer_id, check_date) index) finds it with a
window function (SQL: ``repository.reporting``). "So far" is up to the latest day with
checks (or ``through``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from app.months import Month
from app.qualification.repository import reporting


@dataclass
class ProgressReport:
    month: Month
    through: date | None
    evaluated: int = 0
    on_track: int = 0
    on_track_eligible: int = 0  # on track, active and with a valid mobile number
    dropped: int = 0
    # day -> {"BELOW_THRESHOLD": n, "MISSING_DATA": n}
    by_day: dict[date, dict[str, int]] = field(default_factory=dict)

    def day_rows(self) -> list[dict[str, Any]]:
        """One row per day so far: who dropped that day, and who is left after it."""
        rows: list[dict[str, Any]] = []
        if self.through is None:
            return rows
        remaining = self.evaluated
        day = self.month.first
        while day <= self.through:
            drops = self.by_day.get(day, {})
            below, missing = drops.get("BELOW_THRESHOLD", 0), drops.get("MISSING_DATA", 0)
            remaining -= below + missing
            rows.append(
                {
                    "day": day,
                    "dropped_below_threshold": below,
                    "dropped_missing_data": missing,
                    "still_on_track": remaining,
                }
            )
            day = date.fromordinal(day.toordinal() + 1)
        return rows


def month_progress(
    session: Session, month: Month, *, today: date, through: date | None = None
) -> ProgressReport:
    """Progress of ``month`` up to ``through`` (default: the latest day with checks)."""
    until = min(month.last, today, through or month.last)
    if through is None:
        latest = reporting.latest_check_day(session, month.first, until)
        if latest is None:
            return ProgressReport(month, None)
        until = latest
    if until < month.first:
        return ProgressReport(month, None)
    report = ProgressReport(month, until)
    for row in reporting.drop_outs(session, month.first, until):
        n = int(row.customers)
        report.evaluated += n
        if row.drop_day is None:
            report.on_track += n
            report.on_track_eligible += n if row.eligible else 0
        else:
            report.dropped += n
            day = report.by_day.setdefault(row.drop_day, {})
            day[row.reason] = day.get(row.reason, 0) + n
    return report
