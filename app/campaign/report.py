"""The campaign controls' figures where operators look: the month report and ``status``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.campaign import repository as repo
from app.campaign import switch
from app.months import Month

_PLACES = Decimal("0.00001")  # the carrier prices to 5 places


def month_figures(session: Session, month: Month) -> dict[str, Any]:
    """Opt-outs and cost of the month's messages, for ``report month``.

    * ``skipped_opted_out``: qualified customers not texted because they opted out;
    * ``opted_out_by_carrier``: messages the carrier refused with 21610 (each also
      recorded the customer's opt-out);
    * ``segments``: segments of the messages the carrier accepted, as the carrier counted
      them, else as we did (``segments_estimated`` messages: not reported yet);
    * ``cost`` / ``cost_unit``: the carrier's total price of the ``messages_priced``
      messages (a price arrives late: a month's cost grows while statuses come in).
    """
    f = repo.month_figures(session, month)
    totals = repo.month_cost(session, month)
    by_unit = [(unit or "?", total.quantize(_PLACES)) for unit, total in totals]
    cost: str | None = None
    unit: str | None = None
    if len(by_unit) == 1:
        unit, cost = by_unit[0][0], str(by_unit[0][1])
    elif by_unit:  # several currencies: each with its unit
        cost = "; ".join(f"{amount} {u}" for u, amount in by_unit)
    return {
        "skipped_opted_out": int(f.skipped_opted_out),
        "opted_out_by_carrier": int(f.refused_unsubscribed),
        "segments": int(f.segments),
        "segments_estimated": int(f.segments_estimated),
        "messages_priced": int(f.priced),
        "cost": cost,
        "cost_unit": unit,
    }


def status_summary(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """The kill switch and opt-outs, for ``premium-notify status``."""
    now = now or datetime.now(UTC).replace(tzinfo=None)
    state = switch.read(session)
    opted_out, recent = repo.opt_out_counts(session, now - timedelta(hours=24))
    return {**state.as_dict(), "opted_out": opted_out, "opt_outs_24h": recent}


def status_lines(summary: dict[str, Any], tz: tzinfo = UTC) -> list[str]:
    """The switch and opt-outs in lines of under 80 columns (``status``'s table view);
    the time of the pause in ``tz`` (the bank's, as the rest of ``status``)."""
    counts = f"opted out: {summary['opted_out']} customers (+{summary['opt_outs_24h']} in 24 h)"
    if not summary["paused"]:
        return [f"SMS sending: on; {counts}"]
    since = summary["changed_at"]
    when = f"{since.replace(tzinfo=UTC).astimezone(tz):%Y-%m-%d %H:%M %Z}" if since else "?"
    lines = [f"SMS sending: PAUSED since {when} by {summary['source']} "
             f"({str(summary['changed_by'])[:20]})"]  # fmt: skip
    if summary["reason"]:
        lines.append(f"  why: {str(summary['reason'])[:72]}")
    lines.append(f"  premium-notify sms resume; {counts}")
    return lines
