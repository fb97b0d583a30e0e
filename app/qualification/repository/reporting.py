"""SQL of the read-only qualification reports (the seed's section 6.2 and more).

``qualification_rows`` streams one row per evaluated customer (server-side cursor), so a
million-customer month is written out without holding it in memory. The in-month
progress query finds the day each customer dropped out in one pass over the month's
checks (ordered by the (customer_id, check_date) index), with a window function.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from app.models.enums import SubmissionStatus
from app.months import Month

QUALIFICATION_COLUMNS = (
    "account_number",
    "qualification_month",
    "qualified",
    "qualifying_days",
    "total_days_in_month",
    "disqualification_reason",
)

_ROWS = """
    SELECT c.account_number, mq.qualification_month, mq.qualified, mq.qualifying_days,
           mq.total_days_in_month, mq.disqualification_reason
    FROM monthly_qualifications mq JOIN customers c ON c.id = mq.customer_id
    WHERE mq.qualification_month = :first {extra}
    ORDER BY c.account_number
"""

# SMS figures of the month's qualifications. "Sent" = accepted by the carrier (it has a
# carrier reference); "delivered" = a delivery status row says Delivered. The seed's
# query selects notifications by submission_timestamp >= the month's first day, which
# also counts every later month's messages; joining the month's qualifications does not.
_SMS = text(
    """
    SELECT count(*) AS notifications,
           count(*) FILTER (WHERE n.carrier_reference_id IS NOT NULL) AS sms_sent,
           count(*) FILTER (WHERE n.submission_status = :failed) AS sms_failed,
           count(*) FILTER (WHERE EXISTS (
               SELECT 1 FROM delivery_status ds
               WHERE ds.notification_id = n.id AND ds.status = 'Delivered')) AS delivered
    FROM notifications n
    JOIN monthly_qualifications mq ON mq.id = n.qualification_id
    WHERE mq.qualification_month = :first
    """
)


def qualification_rows(
    session: Session, month: Month, *, qualified_only: bool = False, chunk: int = 5000
) -> Iterator[dict[str, Any]]:
    """One dict per evaluated customer (``QUALIFICATION_COLUMNS``), by account number."""
    sql = text(_ROWS.format(extra="AND mq.qualified" if qualified_only else ""))
    result = session.execute(sql, {"first": month.first}, execution_options={"yield_per": chunk})
    for row in result:
        yield dict(row._mapping)


def sms_figures(session: Session, month: Month) -> Row[Any]:
    """notifications, sms_sent, sms_failed, delivered of the month's qualifications."""
    return session.execute(
        _SMS, {"first": month.first, "failed": str(SubmissionStatus.FAILED)}
    ).one()


# --- in-month progress ----------------------------------------------------------------

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


def latest_check_day(session: Session, first: date, until: date) -> date | None:
    """The latest day in [first, until] that has any check."""
    latest: date | None = session.execute(_LATEST_DAY, {"first": first, "until": until}).scalar()
    return latest


def drop_outs(session: Session, first: date, through: date) -> list[Row[Any]]:
    """Customers per (drop_day, reason, eligible); drop_day NULL: still on track."""
    return list(session.execute(_PROGRESS, {"first": first, "through": through}))
