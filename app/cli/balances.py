"""Balance-check operator commands.

``run balance-checks``, ``enqueue balance-checks``, ``run gap-repair``,
``balances import FILE --date D`` and ``simulate core-banking``.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.common import (
    OutputFormat,
    UserError,
    emit_rows,
    err_console,
    progress_bar,
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


def _run_day(day: date, spec: str | None, shards: int | None, fmt: OutputFormat) -> dict[str, Any]:
    from app.balances import repository
    from app.balances.checks import FutureDateError
    from app.balances.day import run_day
    from app.balances.sources import SourceError, source_from_spec

    try:
        source = source_from_spec(spec)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    try:
        with session_scope() as session:
            total = repository.count_active(session)  # the progress bar's total
        with progress_bar(f"balance checks {day}", total) as advance:
            run_id, totals = run_day(
                session_scope, day, source, source_spec=spec, shard_count=shards, progress=advance
            )
    except (FutureDateError, SourceError) as exc:
        raise UserError(str(exc)) from None
    finally:
        source.close()
    row = {"run_id": run_id, "date": day, **{k: totals[k] for k in TOTAL_COLUMNS}}
    emit_rows([row], list(row), fmt, title="balance checks")
    return totals


@run_app.command("balance-checks")
def run_balance_checks(
    date_: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")],
    source: Annotated[str | None, typer.Option(help=SOURCE_HELP)] = None,
    shards: Annotated[int | None, typer.Option(min=1, help="Shards (default setting).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Check every active customer's balance for one day, in this process."""
    _run_day(_date(date_), source, shards, fmt)


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
    from app.balances.sources import SourceError, source_from_spec

    first, last = _date(start), _date(end)
    try:
        src = source_from_spec(source)
        with progress_bar("gap repair", None) as advance:
            report = repair_gaps(session_scope, first, last, source=src, progress=advance)
    except (FutureDateError, SourceError, ValueError) as exc:
        raise UserError(str(exc)) from None
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
    rejects: Annotated[Path | None, typer.Option(help="Write rejected rows to this CSV.")] = None,
    shards: Annotated[int | None, typer.Option(min=1)] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.TABLE,
) -> None:
    """Load an EOD extract for one day: bad rows and unknown accounts are reported."""
    import csv

    from app.balances import repository
    from app.balances.sources import SourceError
    from app.balances.sources.eod_file import load_extract

    if not file.is_file():
        raise UserError(f"{file}: no such file")
    try:
        extract = load_extract(file)
    except SourceError as exc:
        raise UserError(str(exc)) from None
    _run_day(_date(date_), f"file:{file}", shards, fmt)
    with session_scope() as session:
        unknown = repository.unknown_accounts(session, list(extract.answers))
    problems = [(r.line, r.account_number, r.reason) for r in extract.rejected]
    problems += [(0, acc, "unknown account (no such customer)") for acc in unknown]
    if rejects is not None:
        with rejects.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "account_number", "reason"])
            writer.writerows(problems)
    for line, account, reason in problems[:20]:
        where = f"line {line}" if line else "extract"
        err_console.print(f"{where}: {reason} (account {account or '?'})")
    if len(problems) > 20 and rejects is None:
        err_console.print(f"... and {len(problems) - 20} more (use --rejects PATH)")
    err_console.print(
        f"extract: {extract.rows} rows, {len(extract.rejected)} rejected, "
        f"{len(unknown)} unknown accounts"
    )
