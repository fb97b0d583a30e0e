"""Read-only reports over a month's qualification results (the seed's section 6.2 and more).

``qualification_rows`` streams one row per evaluated customer (server-side cursor), so a
million-customer month is written out without holding it in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.enums import SubmissionStatus
from app.months import Month
from app.qualification.engine import month_totals
from app.qualification.months import REASON_ORDER

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
    """One dict per evaluated customer, ordered by account number."""
    sql = text(_ROWS.format(extra="AND mq.qualified" if qualified_only else ""))
    result = session.execute(sql, {"first": month.first}, execution_options={"yield_per": chunk})
    for row in result:
        yield dict(row._mapping)


def _rate(part: int, whole: int) -> float | None:
    return round(part * 100.0 / whole, 2) if whole else None


def month_report(session: Session, month: Month) -> dict[str, Any]:
    """Qualified count and rate, SMS sent, delivered, delivery rate, counts by reason.

    The qualification rate's denominator is the evaluated customers (those with at least
    one check in the month: one qualification row each), as the seed's denominator.
    """
    totals = month_totals(session, month)
    sms = session.execute(
        _SMS, {"first": month.first, "failed": str(SubmissionStatus.FAILED)}
    ).one()
    report: dict[str, Any] = {
        "month": str(month),
        "evaluated": totals.rows,
        "qualified": totals.qualified,
        "qualification_rate": _rate(totals.qualified, totals.rows),
        "disqualified": totals.disqualified,
    }
    for reason in REASON_ORDER:
        report[f"reason_{reason.lower()}"] = totals.reasons[reason]
    report.update(
        {
            "notifications": int(sms.notifications),
            "sms_sent": int(sms.sms_sent),
            "sms_failed": int(sms.sms_failed),
            "delivered": int(sms.delivered),
            "delivery_rate": _rate(int(sms.delivered), int(sms.sms_sent)),
        }
    )
    return report
