"""Delivery operator commands: ``run|enqueue delivery-poll``, ``report failures``."""

from __future__ import annotations

from datetime import date

import typer

from app.cli.common import (
    OutputFormat,
    UserError,
    emit_rows,
    parse_month,
    progress_bar,
    require_redis,
)
from app.cli.groups import enqueue_app, report_app, run_app
from app.db.session import session_scope
from app.delivery.polling import DeliveryPoller, Mode, PollStats
from app.delivery.repository.reports import (
    BY_REASON_COLUMNS,
    MESSAGE_COLUMNS,
    failed_messages,
    failures_by_reason,
)
from app.notifications.carrier import CarrierClient, CarrierConfigError
from worker import limits

FORMAT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
MODE = typer.Option(Mode.AUTO, "--mode", help="auto (list or fetch, fewer calls), bulk, fetch")
SUMMARY = ("day", "mode", "due", "calls", "list_calls", "fetch_calls", "changed", "unchanged",
           "finals", "deadline_finals", "unknown_statuses", "contradictions", "stragglers_left",
           "carrier_error")  # fmt: skip


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--day must be YYYY-MM-DD, got {value!r}") from None


@run_app.command("delivery-poll")
def run_delivery_poll(
    day: str | None = typer.Option(None, "--day", help="Only this submission day (UTC)."),
    mode: Mode = MODE,
    lookback_days: int | None = typer.Option(
        None, "--lookback-days", min=1, help="Look further back than DELIVERY_LOOKBACK_DAYS."
    ),
    force: bool = typer.Option(
        False, "--force", help="Check every open message now, ignoring the backoff."
    ),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Poll the carrier once, in this process, for every day with messages due."""
    try:
        # Shares the workers' read limit when REDIS_URL is set.
        poller = DeliveryPoller(CarrierClient.from_settings(), limits.carrier_reads())
    except CarrierConfigError as exc:
        raise UserError(str(exc)) from None
    require_redis()
    if day is not None:
        days = [_parse_day(day)]
    else:
        with session_scope() as session:
            days = [d.day for d in poller.due_days(session, lookback_days)]
    results: list[PollStats] = []
    with progress_bar("polling delivery", len(days)) as advance:
        for each in days:
            results.append(
                poller.poll_day(session_scope, each, mode, triggered_by="cli", force=force)
            )
            advance(1)
    rows = [r.as_dict() for r in results]
    if not rows:
        typer.echo("no messages are due for a delivery check")
        return
    emit_rows(rows, SUMMARY, fmt, title="delivery poll")
    errors = [r for r in results if r.carrier_error]
    if errors:
        raise UserError(
            f"the carrier failed during {len(errors)} day(s); what was read is kept, "
            "the next poll resumes"
        )


@enqueue_app.command("delivery-poll")
def enqueue_delivery_poll(
    lookback_days: int | None = typer.Option(None, "--lookback-days", min=1),
    mode: Mode = MODE,
) -> None:
    """Ask the workers to poll now (prints the message id)."""
    from worker.actors.delivery import poll

    message = poll.send(lookback_days, str(mode))
    typer.echo(message.message_id)


@report_app.command("failures")
def report_failures(
    month: str = typer.Option(..., "--month", help="Qualification month, YYYY-MM."),
    messages: bool = typer.Option(False, "--messages", help="One line per message."),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Undeliverable, failed and unknown-outcome messages of the month, by reason."""
    target = parse_month(month)
    with session_scope() as session:
        if messages:
            rows = list(failed_messages(session, target))
            emit_rows(rows, MESSAGE_COLUMNS, fmt, title=f"Failed messages {month}")
        else:
            rows = failures_by_reason(session, target)
            emit_rows(rows, BY_REASON_COLUMNS, fmt, title=f"Delivery failures {month}")
