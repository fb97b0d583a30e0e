"""``premium-notify report qualifications | month | progress``."""

from __future__ import annotations

import json
import sys
from datetime import date
from typing import Any

import typer

from app import csvout
from app.cli.common import OutputFormat, UserError, emit_rows, parse_month
from app.cli.groups import report_app
from app.config import get_settings
from app.db.session import session_scope
from app.months import Month, local_today
from app.qualification.progress import month_progress
from app.qualification.reports import month_report
from app.qualification.repository.reporting import (
    QUALIFICATION_COLUMNS,
    latest_check_day,
    qualification_rows,
)

FORMAT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return value


@report_app.command("qualifications")
def report_qualifications(
    month: str = typer.Option(..., "--month", help="YYYY-MM"),
    fmt: OutputFormat = FORMAT,
    qualified_only: bool = typer.Option(False, "--qualified-only"),
) -> None:
    """One line per evaluated customer of the month (streamed for csv and json)."""
    target = parse_month(month)
    with session_scope() as session:
        rows = qualification_rows(session, target, qualified_only=qualified_only)
        if fmt is OutputFormat.CSV:
            writer = csvout.writer(sys.stdout, lineterminator="\n")
            writer.writerow(QUALIFICATION_COLUMNS)
            for row in rows:
                writer.writerow([_cell(row[c]) for c in QUALIFICATION_COLUMNS])
        elif fmt is OutputFormat.JSON:
            # A JSON array written element by element: constant memory for any month.
            sys.stdout.write("[")
            for i, row in enumerate(rows):
                sys.stdout.write(("," if i else "") + json.dumps(_json_row(row)))
            sys.stdout.write("]\n")
        else:
            emit_rows(list(rows), QUALIFICATION_COLUMNS, fmt, title=f"Qualifications {target}")


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {c: row[c] for c in QUALIFICATION_COLUMNS}
    out["qualification_month"] = row["qualification_month"].isoformat()
    return out


@report_app.command("month")
def report_month(
    month: str = typer.Option(..., "--month", help="YYYY-MM"), fmt: OutputFormat = FORMAT
) -> None:
    """The month's performance: qualified and rate, SMS sent, delivered and rate, reasons.

    A month that has not been qualified has no report (exit 2, saying why), rather than
    zeros that would read as real figures.
    """
    target = parse_month(month)
    with session_scope() as session:
        report = month_report(session, target)
        last_check = (
            None if report["evaluated"] else latest_check_day(session, target.first, target.last)
        )
    if not report["evaluated"]:
        if last_check is None:
            raise UserError(f"no data for {target}: no balance checks and no qualification results")
        raise UserError(
            f"{target} has not been qualified (balance checks through {last_check}): "
            f"premium-notify run qualification --month {target}"
        )
    if fmt is OutputFormat.TABLE:
        rows = [{"metric": k, "value": v} for k, v in report.items()]
        emit_rows(rows, ("metric", "value"), fmt, title=f"Month {target}")
    else:
        emit_rows([report], list(report), fmt)


@report_app.command("progress")
def report_progress(
    month: str | None = typer.Option(None, "--month", help="YYYY-MM (default: this month)"),
    through: str | None = typer.Option(None, "--through", help="YYYY-MM-DD (default: latest)"),
    fmt: OutputFormat = FORMAT,
) -> None:
    """During a month: customers still on track, and who dropped out on which day."""
    today = local_today(get_settings().tz)
    target = parse_month(month) if month else Month.of(today)
    until: date | None = None
    if through:
        try:
            until = date.fromisoformat(through)
        except ValueError:
            raise UserError(f"--through must be YYYY-MM-DD, got {through!r}") from None
        if not target.first <= until <= target.last:
            raise UserError(f"--through {through} is not in {target}")
    with session_scope() as session:
        report = month_progress(session, target, today=today, through=until)
    summary = {
        "month": str(target),
        "through": report.through,
        "evaluated": report.evaluated,
        "on_track": report.on_track,
        "on_track_eligible": report.on_track_eligible,
        "dropped": report.dropped,
    }
    if fmt is OutputFormat.JSON:
        typer.echo(json.dumps({**summary, "days": report.day_rows()}, default=_cell))
        return
    if fmt is OutputFormat.TABLE:
        emit_rows([summary], list(summary), fmt, title=f"Progress of {target}")
    days = report.day_rows()
    columns = ("day", "dropped_below_threshold", "dropped_missing_data", "still_on_track")
    emit_rows(days, columns, fmt, title="Drop-outs by day")
