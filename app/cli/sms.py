"""SMS operator commands: ``sms preview``, ``simulate carrier``, ``run|enqueue notifications``."""

from __future__ import annotations

import json
import time
from datetime import date

import typer

from app.campaign.costs import segment_warning
from app.cli.common import (
    OutputFormat,
    UserError,
    console,
    emit_rows,
    err_console,
    parse_month,
    progress_bar,
    require_redis,
)
from app.cli.groups import cli, enqueue_app, run_app
from app.db.session import session_scope
from app.months import Month
from app.notifications.carrier import CarrierClient, CarrierConfigError
from app.notifications.outbox import OutboxError, prepare_month
from app.notifications.repository import customer_names, queued_batches
from app.notifications.segments import analyze
from app.notifications.sending import (
    BatchOutcome,
    Sender,
    utcnow,
)
from app.notifications.templates import TemplateError, get_template
from app.notifications.window import SendWindow
from worker import limits

FORMAT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
sms_app = typer.Typer(
    help="SMS templates, segment counts and the kill switch.", no_args_is_help=True
)
cli.add_typer(sms_app, name="sms")


@sms_app.command("preview")
def preview(
    text: str | None = typer.Argument(None, help="A message text to measure."),
    template: str | None = typer.Option(None, help="Render this template (he, en) instead."),
    account: str | None = typer.Option(None, help="Render for this account number."),
    month: str | None = typer.Option(None, help="Month to name (YYYY-MM; default: last month)."),
    as_json: bool = typer.Option(False, "--json", help="Print {encoding, characters, segments}."),
) -> None:
    """Encoding, length and segment count of a text or a rendered template."""
    if text is None and template is None:
        raise UserError("give a TEXT or --template NAME")
    if text is not None and template is not None:
        raise UserError("give either a TEXT or --template, not both")
    if text is None:
        target = parse_month(month) if month else Month.of(date.today()).previous()
        try:
            tpl = get_template(template)
        except TemplateError as exc:
            raise UserError(str(exc)) from None
        first_name, last_name = "Dana", "Levi"
        if account is not None:
            with session_scope() as session:
                names = customer_names(session, account)
            if names is None:
                raise UserError(f"no customer with account number {account!r}")
            first_name, last_name = names
        text = tpl.render(first_name=first_name, last_name=last_name, month=target)
    info = analyze(text)
    what = f"template {template!r} rendered" if template is not None else "this text"
    warning = segment_warning(info, what)  # each segment is charged as a message
    if as_json:
        typer.echo(json.dumps({**info.as_dict(), **({"warning": warning} if warning else {})}))
    else:
        shown = {**info.as_dict(), "text": text}
        emit_rows([shown], list(shown), OutputFormat.TABLE)
        if warning:
            err_console.print(f"[bold yellow]warning:[/] {warning}")


@run_app.command("notifications")
def run_notifications(
    month: str = typer.Option(..., help="The qualified month, YYYY-MM."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Render and count; send nothing."),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Prepare the month's outbox and send it in this process (progress bar)."""
    target = parse_month(month)
    window = SendWindow.from_settings()
    sender: Sender | None = None
    if not dry_run:
        try:
            # Before the outbox is written: without carrier credentials nothing is done.
            # Shares the workers' limit when REDIS_URL is set: a run must not double the rate.
            sender = Sender(CarrierClient.from_settings(), limits.sms_segments(), window)
        except CarrierConfigError as exc:
            raise UserError(str(exc)) from None
        require_redis()
    try:
        with session_scope() as session:
            result = prepare_month(session, target, dry_run=dry_run, triggered_by="cli")
    except (OutboxError, TemplateError) as exc:
        raise UserError(str(exc)) from None
    summary = result.as_dict()
    for warning in result.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}")
    if sender is None:
        emit_rows([summary], list(summary), fmt, title=f"dry run {result.month} (nothing sent)")
        return
    with session_scope() as session:
        batches = queued_batches(session, target)
    total = BatchOutcome()
    with progress_bar(f"sending {result.month}", len(batches)) as advance:
        for batch in batches:
            while True:
                outcome = sender.send_batch(session_scope, batch)
                total.add(outcome)
                if outcome.paused:
                    raise UserError(
                        f"sending is paused (premium-notify status; premium-notify sms "
                        f"resume); {total.submitted} sent, the rest stay queued"
                    )
                if outcome.window_closed:
                    opens = window.next_open(utcnow())
                    raise UserError(
                        f"the send window is closed (opens {opens:%Y-%m-%d %H:%M} UTC); "
                        f"{total.submitted} sent, the rest stay queued"
                        if opens
                        else "the send window is never open (SMS_SEND_WINDOW)"
                    )
                if outcome.defer_seconds is None:
                    break
                time.sleep(outcome.defer_seconds)
            advance(1)
    rows = [{**summary, "submitted": total.submitted, "failed": total.failed,
             "unresolved": total.unresolved, "segments_sent": total.segments}]  # fmt: skip
    emit_rows(rows, list(rows[0]), fmt, title=f"notifications {result.month}")
    if total.unresolved:
        console.print(f"{total.unresolved} ambiguous sends are left to the reconciler")


@enqueue_app.command("notifications")
def enqueue_notifications(month: str = typer.Option(..., help="The month, YYYY-MM.")) -> None:
    """Ask the workers to prepare and send the month (prints the message id)."""
    target = parse_month(month)
    from worker.actors.notifications import prepare_month as actor

    message = actor.send(str(target))
    typer.echo(message.message_id)
