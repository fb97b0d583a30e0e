"""``premium-notify run qualification`` and ``premium-notify enqueue qualification``."""

from __future__ import annotations

from typing import Any

import typer

from app.balances.sources import SourceError
from app.cli.common import (
    OutputFormat,
    UserError,
    console,
    emit_rows,
    err_console,
    operator,
    parse_month,
)
from app.cli.groups import enqueue_app, run_app
from app.config import get_settings
from app.months import Month
from app.qualification.months import QualificationError, ensure_closed

FORMAT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
MONTH_HELP = "The month to qualify, YYYY-MM (it must be over in the bank's time zone)."


def _require_gap_source(month: Month) -> None:
    """Gap repair needs a balance source only if the month has days without a check: say
    so before anything is written (a month already complete qualifies without one)."""
    from app.balances import gaps
    from app.balances.sources import SourceNotConfigured, default_source
    from app.db.session import session_scope

    try:
        default_source().close()
    except SourceNotConfigured:
        if gaps.has_gaps(session_scope, month.first, month.last):
            raise UserError(
                f"{month} has days without a balance check, and gap repair has no balance "
                "source: set CORE_BANKING_URL (or BALANCE_SOURCE=file:PATH), or qualify the "
                "checks as they are with --skip-gap-repair"
            ) from None


@run_app.command("qualification")
def run_qualification(
    month: str = typer.Option(..., "--month", help=MONTH_HELP),
    recompute: bool = typer.Option(
        False, "--recompute", help="Re-decide rows that have no notification yet (audited)."
    ),
    skip_gap_repair: bool = typer.Option(
        False, "--skip-gap-repair", help="Qualify with the checks as they are (recorded)."
    ),
    fmt: OutputFormat = FORMAT,
) -> None:
    """Qualify a closed month in this process, with a progress bar."""
    from rich.progress import Progress

    from app.db.session import session_scope
    from app.qualification import service

    target = parse_month(month)
    try:
        ensure_closed(target, get_settings().tz)
    except QualificationError as exc:
        raise UserError(str(exc)) from None
    if not skip_gap_repair:
        _require_gap_source(target)
    actor = operator()
    with Progress(console=err_console, disable=not err_console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        try:
            result = service.run_month(
                session_scope,
                target,
                recompute=recompute,
                gap_repair=None if skip_gap_repair else service.default_gap_repair,
                triggered_by=actor,
                user_id=actor,
                progress=progress,
            )
        except (QualificationError, SourceError) as exc:
            raise UserError(str(exc)) from None
    totals = result.totals.as_dict()
    row = {
        "month": str(result.month),
        "run_id": str(result.run_id),
        "written": result.written.rows,
        "recomputed": result.recomputed.rows if result.recomputed else 0,
        **{k: totals[k] for k in totals if k != "notified"},
        "seconds": round(result.seconds, 2),
    }
    emit_rows([row], list(row), fmt, title=f"Qualification {result.month}")
    if fmt is OutputFormat.TABLE:
        console.print(
            "The notification stage starts with the next kick, or now with: "
            f"premium-notify enqueue qualification --month {result.month}"
        )


@enqueue_app.command("qualification")
def enqueue_qualification(
    month: str = typer.Option(..., "--month", help=MONTH_HELP),
    recompute: bool = typer.Option(False, "--recompute"),
    notify: bool = typer.Option(
        True, "--notify/--no-notify", help="Start the notification stage once it finished."
    ),
) -> None:
    """Send the month's qualification to the workers (queue 'qualification')."""
    target = parse_month(month)
    try:
        ensure_closed(target, get_settings().tz)
    except QualificationError as exc:
        raise UserError(str(exc)) from None
    # Lazily, and through the registry: it sets the configured broker before any actor.
    import worker.tasks  # noqa: F401
    from worker.actors.qualification import run_month

    message = run_month.send(str(target), recompute=recompute, start_notifications=notify)
    typer.echo(f"enqueued qualification of {target}: message {message.message_id}")
