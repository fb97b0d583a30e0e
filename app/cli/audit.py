"""``premium-notify audit verify``: is the audit trail what was written?"""

from __future__ import annotations

import json
from datetime import date
from functools import partial
from pathlib import Path

import typer

from app.cli.common import UserError, console
from app.cli.groups import cli
from app.db.session import session_scope
from app.maintenance import audit_verify

audit_app = typer.Typer(help="The audit trail: verify its hashes and seals.", no_args_is_help=True)
cli.add_typer(audit_app, name="audit")

_FROM = typer.Option(None, "--from", help="First day (YYYY-MM-DD, UTC); default: the first.")
_TO = typer.Option(None, "--to", help="Last day (YYYY-MM-DD, UTC); default: the last.")
_COLD = typer.Option(
    False, "--cold", help="Also read the retired months' cold files (COLD_STORAGE_*)."
)
_HEADS = typer.Option(
    None, "--heads", help="A chain-heads file exported with a backup: its seals must match."
)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"{option} {value!r} is not a date (YYYY-MM-DD)") from None


def _heads(path: Path | None) -> dict[date, tuple[int, bytes]]:
    if path is None:
        return {}
    try:
        return audit_verify.parse_heads(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot read chain heads from {path}: {exc}") from None


@audit_app.command("verify")
def verify(
    first: str | None = _FROM,
    last: str | None = _TO,
    heads: Path | None = _HEADS,
    cold: bool = _COLD,
) -> None:
    """Recompute every row hash and seal; name the first broken link (exit 1 on a break).
    Days retired to cold storage: their seals always, their rows with --cold."""
    start, end = _day(first, "--from"), _day(last, "--to")
    if start and end and start > end:
        raise UserError("--from is after --to")
    expected = _heads(heads)
    from app.maintenance import audit_cold  # pyarrow: only for this command
    from app.maintenance.cold_storage import ExportError
    from app.maintenance.cold_store import ColdStore

    reader = None
    if cold:
        store = ColdStore.from_settings()
        reader = partial(audit_cold.read_month, store)
    try:
        with session_scope() as session:
            report = audit_verify.verify(session, start, end, expected, cold=reader)
    except ExportError as exc:
        console.print(f"audit trail BROKEN in cold storage: {exc}", highlight=False)
        raise typer.Exit(1) from None
    span = f"{report.first} .. {report.last}" if report.first else "empty trail"
    summary = (
        f"{span}: {report.seals} seals, {report.rows} sealed rows, {report.redacted} redacted, "
        f"{report.legacy} from before the chain"
    )
    if report.cold_seals or report.unread_seals:
        summary += (
            f"; retired to cold storage: {report.cold_seals} seals checked against their "
            f"files, {report.unread_seals} by their links only (without --cold, or the set "
            "expired)"
        )
    broken = report.first_break
    if broken is None:
        console.print(f"audit trail intact: {summary}", highlight=False, soft_wrap=True)
        return
    console.print(f"audit trail BROKEN at {broken}", highlight=False, soft_wrap=True)
    console.print(f"{len(report.breaks)} break(s); {summary}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)
