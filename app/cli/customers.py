"""``premium-notify customers import FILE.csv [--rejects PATH]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import OutputFormat, UserError, emit_rows, err_console, progress_bar
from app.cli.groups import cli

customers_app = typer.Typer(help="Customer master data.", no_args_is_help=True)
cli.add_typer(customers_app, name="customers")


@customers_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="UTF-8 CSV with the customer header.")],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Write rejected rows (line, account_number, reason) to this CSV."),
    ] = None,
    region: str | None = typer.Option(None, help="Region of national numbers (default IL)."),
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="Summary format.")
    ] = OutputFormat.TABLE,
) -> None:
    """Upsert customers by account number; invalid rows are reported, valid ones load."""
    from app.config import get_settings
    from app.customers.importer import (
        CustomerFileError,
        count_rows,
        import_customers,
        write_rejects,
    )
    from app.db.session import session_scope

    if not file.is_file():
        raise UserError(f"{file}: no such file")
    try:
        with progress_bar("importing customers", count_rows(file)) as advance:
            report = import_customers(
                session_scope,
                file,
                region=region or get_settings().default_phone_region,
                progress=advance,
            )
    except CustomerFileError as exc:
        raise UserError(f"{file}: {exc}") from None
    if rejects is not None:
        write_rejects(rejects, report.rejected)
    elif report.rejected:
        for r in report.rejected[:20]:
            err_console.print(f"line {r.line}: {r.reason} (account {r.account_number or '?'})")
        if len(report.rejected) > 20:
            err_console.print(f"... and {len(report.rejected) - 20} more (use --rejects PATH)")
    summary = report.as_dict()
    emit_rows([summary], list(summary), fmt, title="customer import")
