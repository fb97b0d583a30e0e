"""``premium-notify customers import FILE.csv [--rejects PATH] [--warnings PATH]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli import accounting
from app.cli.common import (
    OutputFormat,
    UserError,
    emit_rows,
    operator,
    progress_bar,
    require_input,
    require_writable,
)
from app.cli.groups import cli

customers_app = typer.Typer(help="Customer master data.", no_args_is_help=True)
cli.add_typer(customers_app, name="customers")


@customers_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="UTF-8 CSV with the customer header.")],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Write rejected and skipped rows (line, account, outcome, reason)."),
    ] = None,
    warnings: Annotated[
        Path | None,
        typer.Option(help="Write warnings (line, account, field, reason): contact fields."),
    ] = None,
    region: str | None = typer.Option(None, help="Region of national numbers (default IL)."),
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="Summary format.")
    ] = OutputFormat.TABLE,
) -> None:
    """Upsert customers by account number; every row is accounted for.

    A customer with a missing or invalid phone or email is imported (the value kept in
    phone_raw / email_raw) and reported as a warning; rows without an identity are
    rejected; a second copy of an account is skipped (the first copy wins). Exit 3 when
    rows were rejected or skipped.
    """
    from app.config import get_settings
    from app.customers.importer import CustomerFileError, count_rows, import_customers, write_rows
    from app.db.session import session_scope

    require_input(file)
    require_writable(rejects, "--rejects")
    require_writable(warnings, "--warnings")
    try:
        with progress_bar("importing customers", count_rows(file)) as advance:
            report = import_customers(
                session_scope,
                file,
                region=region or get_settings().default_phone_region,
                progress=advance,
                triggered_by=operator(),
            )
    except CustomerFileError as exc:
        raise UserError(f"{file}: {exc}") from None
    if rejects is not None:
        write_rows(rejects, report.problems())
    if warnings is not None:
        write_rows(warnings, report.warnings, warnings=True)
    accounting.show(report.problems(), "all of them: --rejects PATH")
    accounting.show(report.warnings, "all of them: --warnings PATH")
    counts = report.as_dict()
    accounting.summary("customers", counts)
    emit_rows(
        [{"run_id": report.run_id, **counts}], ["run_id", *counts], fmt, title="customer import"
    )
    accounting.exit_code(counts)
