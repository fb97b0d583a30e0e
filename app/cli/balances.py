"""Balance-check operator commands.

``run balance-checks``, ``enqueue balance-checks``, ``run gap-repair``,
``balances import FILE --date D`` and ``simulate core-banking``.
"""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from app.balances.sources import BalanceSource
from app.cli import accounting
from app.cli.common import (
    OutputFormat,
    UserError,
    emit_rows,
    progress_bar,
    require_input,
    require_redis,
    require_writable,
)
from app.cli.groups import cli, enqueue_app, run_app
from app.db.session import session_scope

balances_app = typer.Typer(help="Daily balance checks.", no_args_is_help=True)
cli.add_typer(balances_app, name="balances")

SOURCE_HELP = "Balance source: 'http' (core banking) or 'file:PATH' (an EOD extract)."
TOTAL_COLUMNS = ("customers", "checked", "inserted", "passed", "flagged", "missing", "rejected")


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(f"--date {value!r} is not a date (YYYY-MM-DD)") from None


def _source(spec: str | None) -> BalanceSource:
    """The balance source of ``spec`` (default: BALANCE_SOURCE), checked before any run is
    written: CORE_BANKING_URL set, or the extract file there and readable."""
    from app.balances.sources import SourceError, default_source, source_from_spec
    from app.balances.sources.eod_file import EodFileSource

    try:
        source = source_from_spec(spec) if spec else default_source()
    except SourceError as exc:
        raise UserError(str(exc)) from None
    if isinstance(source, EodFileSource):
        require_input(source.path)
    return source


def _run_day(day: date, spec: str | None, shards: int | None) -> tuple[uuid.UUID, dict[str, Any]]:
    from app.balances import repository
    from app.balances.checks import FutureDateError
    from app.balances.day import run_day
    from app.balances.sources import SourceError

    source = _source(spec or "http")
    try:
        with session_scope() as session:
            total = repository.count_active(session)  # the progress bar's total
        with progress_bar(f"balance checks {day}", total) as advance:
            return run_day(
                session_scope, day, source, source_spec=spec, shard_count=shards, progress=advance
            )
    except (FutureDateError, SourceError) as exc:
        raise UserError(str(exc)) from None
    finally:
        source.close()


@run_app.command("balance-checks")
def run_balance_checks(
    date_: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="Shards (default setting).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Check every active customer's balance for one day, in this process."""
    day = _date(date_)
    run_id, totals = _run_day(day, source, shards)
    row = {"run_id": run_id, "date": day, **{k: totals[k] for k in TOTAL_COLUMNS}}
    emit_rows([row], list(row), fmt, title="balance checks")


@enqueue_app.command("balance-checks")
def enqueue_balance_checks(
    date_: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="Shards (default setting).")] = None,
) -> None:
    """Create the day's run and send its shards to the broker; prints the run id."""
    from app.balances.checks import FutureDateError
    from app.balances.day import start_day

    day = _date(date_)
    require_redis()  # the shards go to the broker: it must answer before the run is written
    try:
        with session_scope() as session:
            info = start_day(
                session, day, shard_count=shards, source_spec=source, triggered_by="operator"
            )
    except FutureDateError as exc:
        raise UserError(str(exc)) from None
    from worker.actors.balances import send_shards  # lazily: only here does app/ meet dramatiq

    send_shards(info.run_id, list(range(info.shard_count)))
    typer.echo(str(info.run_id))


@run_app.command("gap-repair")
def run_gap_repair(
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD.")],
    end: Annotated[str, typer.Option(help="Last day, YYYY-MM-DD (clamped to yesterday).")],
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Re-check every (active customer, day) in the window that has no check."""
    from app.balances.checks import FutureDateError
    from app.balances.gaps import repair_gaps
    from app.balances.sources import SourceError

    first, last = _date(start), _date(end)
    src = _source(source)
    try:
        with progress_bar("gap repair", None) as advance:
            report = repair_gaps(session_scope, first, last, source=src, progress=advance)
    except (FutureDateError, SourceError, ValueError) as exc:
        raise UserError(str(exc)) from None
    finally:
        src.close()
    row = {
        "run_id": report.run_id,
        "gaps_found": report.gaps_found,
        "filled": report.filled,
        "still_missing": report.still_missing,
        "customers_missing": len(report.still_missing_customer_ids),
    }
    emit_rows([row], list(row), fmt, title="gap repair")


@balances_app.command("import")
def import_extract(
    file: Annotated[Path, typer.Argument(help="CSV account_number,balance,as_of_date[,currency]")],
    date_: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Write rejected and skipped lines (line, account, outcome, reason)."),
    ] = None,
    shards: Annotated[int | None, typer.Option(min=1)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Load an EOD extract for one day; every line is accepted, rejected or skipped.

    Rejected: unreadable lines, bad amounts (exponent notation too), dates or currencies,
    conflicting copies of an account, unknown accounts. Skipped: inactive accounts,
    balances as of another day, identical copies (the first is used). Exit 3 when lines
    were rejected or skipped.
    """
    from app.balances import imports
    from app.balances.checks import FutureDateError, refuse_future
    from app.balances.day import today_local
    from app.balances.sources import SourceError
    from app.balances.sources.eod_file import load_extract
    from app.config import get_settings

    day = _date(date_)
    require_input(file)
    require_writable(rejects, "--rejects")
    try:
        refuse_future(day, today_local())
        extract = load_extract(file)
    except (FutureDateError, SourceError) as exc:
        raise UserError(str(exc)) from None
    with session_scope() as session:
        lines = imports.account_for(session, extract, day, get_settings().balance_max_stale_days)
    run_id, totals = _run_day(day, f"file:{file}", shards)
    counts = lines.as_dict()
    with session_scope() as session:
        imports.record(session, run_id, file.name, counts)
    if rejects is not None:
        accounting.write_notes(rejects, lines.problems())
    accounting.show(lines.problems(), "all of them: --rejects PATH")
    accounting.summary("extract", counts)
    row = {"run_id": run_id, "date": day, **counts}
    row |= {k: totals[k] for k in ("customers", "checked", "inserted", "missing")}
    emit_rows([row], list(row), fmt, title="balances import")
    accounting.exit_code(counts)
