"""``premium-notify dlq list|replay|purge``: dead-lettered messages of the Redis broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from app.cli.common import OutputFormat, UserError, broker_view, emit_rows
from app.cli.groups import cli
from app.db.session import session_scope
from app.maintenance import dlq
from app.observability.events import record_event

dlq_app = typer.Typer(help="Dead-lettered messages: list, replay, purge.", no_args_is_help=True)
cli.add_typer(dlq_app, name="dlq")

COLUMNS = ["queue", "redis_id", "actor", "args", "retries", "died_at", "error"]
QUEUE = typer.Option(None, "--queue", "-q", help="Only this queue (repeatable); default all.")
IDS = typer.Option(None, "--id", help="A message id or redis id (repeatable).")
ACTOR = typer.Option(None, "--actor", help="Only messages of this actor.")


def _client() -> dlq.BrokerView:
    view = broker_view()
    assert view is not None  # required: broker_view raised otherwise
    return view


def _note(event: str, moved: list[dlq.DeadLetter]) -> None:
    # Ids and actor names only: the event must never carry message arguments.
    with session_scope() as session:
        record_event(
            session,
            event,
            f"{len(moved)} dead-lettered message(s)",
            service_name="operator",
            data={
                "messages": [
                    {"queue": d.queue, "id": d.message_id, "actor": d.actor} for d in moved
                ][:500]
            },
        )


_LIMIT_OPT = typer.Option(100, "--limit", min=1)
_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
_ALL_OPT = typer.Option(False, "--all", help="Replay every selected dead letter.")
_OLDER_THAN_DAYS_OPT = typer.Option(
    None, "--older-than-days", help="Only dead letters older than this."
)
_ALL_OPT2 = typer.Option(False, "--all", help="Purge every selected dead letter.")
_YES_OPT = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


@dlq_app.command("list")
def list_(
    queue: list[str] = QUEUE,
    limit: int = _LIMIT_OPT,
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """Dead letters, oldest first, with the last error line."""
    try:
        dead = dlq.list_dead(_client(), queue or None, limit)
    except dlq.DLQError as exc:
        raise UserError(str(exc)) from None
    columns = (
        COLUMNS
        if fmt is OutputFormat.TABLE
        else [*COLUMNS[:3], "message_id", *COLUMNS[3:], "kwargs", "enqueued_at"]
    )
    emit_rows([d.as_row() for d in dead], columns, fmt, title="Dead letters")


@dlq_app.command("replay")
def replay(
    queue: list[str] = QUEUE,
    ids: list[str] = IDS,
    actor: str | None = ACTOR,
    all_: bool = _ALL_OPT,
) -> None:
    """Put dead letters back on their queue (retry count reset). Actors are idempotent,
    so replaying a message whose work was finished by a reconciler is harmless."""
    if not (ids or all_ or actor):
        raise UserError("say what to replay: --id ..., --actor ..., or --all")
    try:
        moved = dlq.replay(_client(), queue or None, ids or None, actor)
    except dlq.DLQError as exc:
        raise UserError(str(exc)) from None
    if moved:
        _note("dlq.replayed", moved)
    typer.echo(f"replayed {len(moved)} message(s)")


@dlq_app.command("purge")
def purge(
    queue: list[str] = QUEUE,
    ids: list[str] = IDS,
    actor: str | None = ACTOR,
    older_than_days: float | None = _OLDER_THAN_DAYS_OPT,
    all_: bool = _ALL_OPT2,
    yes: bool = _YES_OPT,
) -> None:
    """Delete dead letters for good (the database still says what was not done)."""
    if not (ids or all_ or actor or older_than_days is not None):
        raise UserError("say what to purge: --id ..., --actor ..., --older-than-days N or --all")
    client = _client()
    if not yes:
        try:
            count = len(dlq.list_dead(client, queue or None, limit=1_000_000))
        except dlq.DLQError as exc:
            raise UserError(str(exc)) from None
        typer.confirm(f"Purge from {count} dead letter(s) in scope?", abort=True)
    cutoff = (
        datetime.now(UTC).replace(tzinfo=None) - timedelta(days=older_than_days)
        if older_than_days is not None
        else None
    )
    try:
        gone = dlq.purge(client, queue or None, ids or None, actor, cutoff)
    except dlq.DLQError as exc:
        raise UserError(str(exc)) from None
    if gone:
        _note("dlq.purged", gone)
    typer.echo(f"purged {len(gone)} message(s)")
