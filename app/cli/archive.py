"""``premium-notify archive query SQL``: auditors read cold storage (read-only, DuckDB)."""

from __future__ import annotations

import typer

from app.cli.common import OutputFormat, UserError, emit_rows
from app.cli.groups import cli

archive_app = typer.Typer(
    help="Cold storage: read-only queries for auditors.", no_args_is_help=True
)
cli.add_typer(archive_app, name="archive")

_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")


@archive_app.command("query")
def query(
    sql: str = typer.Argument(..., help="One SELECT; tables: audit_log, daily_balance_checks, ..."),
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """One read-only SQL query over the Parquet files of cold storage (DuckDB).

    Each table with data in cold storage is a view of the same name, e.g.
    ``SELECT count(*) FROM audit_log WHERE entity_type = 'BalanceCheck'``.
    """
    from app.maintenance.archive_query import QueryError, run
    from app.maintenance.cold_store import ColdStore

    try:
        columns, rows = run(ColdStore.from_settings(), sql)
    except QueryError as exc:
        raise UserError(str(exc)) from None
    emit_rows([dict(zip(columns, r, strict=True)) for r in rows], columns, fmt, title="archive")
