"""``premium-notify gdpr export|erase``: data subject access and erasure (audited)."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import typer

from app.cli.common import UserError, err_console, operator, require_writable
from app.cli.groups import cli
from app.db.session import session_scope
from app.maintenance import encryption, gdpr

gdpr_app = typer.Typer(help="GDPR: export or erase a customer's data.", no_args_is_help=True)
cli.add_typer(gdpr_app, name="gdpr")

ACCOUNT = typer.Option(..., "--account", help="The customer's account number.")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):  # audit rows' hashes
        return bytes(value).hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_OUTPUT_OPT = typer.Option(
    None,
    "--output",
    "-o",
    help="Write the JSON here, age-encrypted to BACKUP_AGE_RECIPIENTS_FILE (mode 0600); "
    "default stdout (plain, for a terminal).",
)
_ANONYMISE_OPT = typer.Option(
    False,
    "--anonymise",
    help="Also replace names, phone, email and message bodies with placeholders "
    "everywhere (irreversible). Without it the customer is only deactivated.",
)
_YES_OPT = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")


@gdpr_app.command("export")
def export(
    account: str = ACCOUNT,
    output: Path | None = _OUTPUT_OPT,
) -> None:
    """One JSON document with every row about the customer, hot and archived.

    The export's audit row is committed only once the file exists: an unwritable path
    is refused before anything is read, and a failed write leaves no audit row.
    """
    require_writable(output, "--output")
    written = False
    try:
        with session_scope() as session:
            document = gdpr.export(session, account, operator=operator())
            body = json.dumps(document, default=_json_default, ensure_ascii=False, indent=2)
            if output is not None:
                _write_private(output, body + "\n")
                written = True
    except (gdpr.GdprError, encryption.EncryptionError) as exc:
        raise UserError(str(exc)) from None
    except BaseException:
        if written and output is not None:  # the audit row did not commit: no file either
            output.unlink(missing_ok=True)
        raise
    if output is None:
        typer.echo(body)
        return
    err_console.print(
        f"wrote {output}: " + ", ".join(f"{k} {v}" for k, v in document["counts"].items())
    )


def _write_private(path: Path, text: str) -> None:
    # Personal data at rest: encrypted with age to BACKUP_AGE_RECIPIENTS_FILE (read with
    # `age -d -i <identity>`), written as a new 0600 file renamed over the target, so an
    # existing file's mode or owner never carries over.
    recipients = encryption.keys().recipients
    encryption.write_private(path, encryption.encrypt(text.encode("utf-8"), recipients))


@gdpr_app.command("erase")
def erase(
    account: str = ACCOUNT,
    anonymise: bool = _ANONYMISE_OPT,
    yes: bool = _YES_OPT,
) -> None:
    """Deactivate the customer (default) or anonymise them; compliance rows are kept."""
    if anonymise and not yes:
        typer.confirm(f"Irreversibly anonymise account {account}?", abort=True)
    try:
        with session_scope() as session:
            counts = gdpr.erase(session, account, anonymise=anonymise, operator=operator())
    except gdpr.GdprError as exc:
        raise UserError(str(exc)) from None
    what = "anonymised" if anonymise else "deactivated"
    typer.echo(f"{what} {account}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
