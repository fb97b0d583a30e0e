"""``premium-notify run retention`` / ``enqueue retention``: archival and cold storage."""

from __future__ import annotations

from typing import Any

import typer

from app.cli.common import OutputFormat, UserError, emit_rows, err_console, operator
from app.cli.groups import enqueue_app, run_app

_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")


@run_app.command("retention")
def run_retention(
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """Move months past their hot period to cold storage, drop old partitions, expire."""
    from rich.progress import Progress

    from app.db.session import session_scope
    from app.maintenance import retention

    with Progress(console=err_console, disable=not err_console.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(f"retire {step}", total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = retention.run(session_scope, triggered_by=operator(), progress=progress)
    if result.skipped:  # nothing done: an operator's situation, not an internal failure
        raise UserError(f"nothing done: {result.skipped}")
    rows: list[dict[str, Any]] = [
        {"table": e["table"], "month": e["month"], "action": "exported", "rows": e["rows"]}
        for e in result.exported
    ]
    rows += [
        {"table": t, "month": "", "action": "deleted", "rows": n} for t, n in result.deleted.items()
    ]
    rows += [{"table": p, "month": "", "action": "dropped", "rows": ""} for p in result.dropped]
    rows += [{"table": s, "month": "", "action": "expired", "rows": ""} for s in result.expired]
    emit_rows(
        rows, ["table", "month", "action", "rows"], fmt, title=f"Retention run {result.run_id}"
    )
    if fmt is OutputFormat.TABLE and result.store:
        typer.echo(f"cold storage: {result.store}")


@enqueue_app.command("retention")
def enqueue_retention() -> None:
    """Send a retention run to the workers (queue 'maintenance')."""
    # Lazily: only enqueueing commands load the worker runtime.
    from worker.actors.maintenance import retention_run

    message = retention_run.send(operator())
    typer.echo(f"enqueued retention: message {message.message_id}")
