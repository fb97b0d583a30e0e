"""The month's performance report (the seed's section 6.2 and more), read-only.

The per-customer rows are streamed straight from ``repository.reporting``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.campaign.report import month_figures as campaign_figures
from app.months import Month
from app.qualification.engine import month_totals
from app.qualification.months import REASON_ORDER
from app.qualification.repository import reporting


def _rate(part: int, whole: int) -> float | None:
    return round(part * 100.0 / whole, 2) if whole else None


def month_report(session: Session, month: Month) -> dict[str, Any]:
    """Qualified count and rate, SMS sent, delivered, delivery rate, counts by reason; the
    campaign's opt-outs, segments and cost (``app.campaign.report.month_figures``).

    The qualification rate's denominator is the evaluated customers (those with at least
    one check in the month: one qualification row each), as the seed's denominator.
    """
    totals = month_totals(session, month)
    sms = reporting.sms_figures(session, month)
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
    report.update(campaign_figures(session, month))  # opt-outs, segments and cost
    return report
