"""In-month progress: who is still on track, who dropped out, and on which day.

A customer is on track while every day so far has a check that passes the threshold.
The day a customer drops out is the first day that fails or has no check; one pass over
the month's checks (ordered by the (customer_id, check_date) index) finds it with a
window function. "So far" is up to the latest day with checks (or ``through``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.months import Month

_LATEST_DAY = text(
    """
    SELECT max(check_date) FROM daily_balance_checks
    WHERE check_date >= :first AND check_date <= :until
    """
)

_PROGRESS = text(
    """
    WITH checks AS (
        SELECT customer_id, check_date, passes_threshold,
               lag(check_date) OVER (PARTITION BY customer_id ORDER BY check_date) AS prev
        FROM daily_balance_checks
        WHERE check_date >= :first AND check_date <= :through
    ),
    per_customer AS (
        SELECT customer_id,
               min(check_date) FILTER (WHERE NOT passes_threshold) AS first_fail,
               min(COALESCE(prev, CAST(:first AS date) - 1) + 1) FILTER (
                   WHERE check_date - COALESCE(prev, CAST(:first AS date) - 1) > 1
               ) AS inner_gap,
               max(check_date) AS last_day
        FROM checks GROUP BY customer_id
    ),
    dropped AS (
        SELECT p.customer_id, p.first_fail,
               COALESCE(p.inner_gap, CASE WHEN p.last_day < :through
                                          THEN p.last_day + 1 END) AS first_gap
        FROM per_customer p
    ),
    decided AS (
        SELECT d.customer_id,
               LEAST(d.first_fail, d.first_gap) AS drop_day,
               CASE WHEN d.first_gap IS NULL OR d.first_fail < d.first_gap
                    THEN 'BELOW_THRESHOLD' ELSE 'MISSING_DATA' END AS reason,
               (c.is_active IS TRUE AND c.phone_is_valid_mobile) AS eligible
        FROM dropped d JOIN customers c ON c.id = d.customer_id
    )
    SELECT drop_day, reason, eligible, count(*) AS customers
    FROM decided GROUP BY drop_day, reason, eligible
    """
)


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
        latest = session.execute(_LATEST_DAY, {"first": month.first, "until": until}).scalar()
        if latest is None:
            return ProgressReport(month, None)
        until = latest
    if until < month.first:
        return ProgressReport(month, None)
    report = ProgressReport(month, until)
    for row in session.execute(_PROGRESS, {"first": month.first, "through": until}):
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
