"""``premium-notify db roles``: least-privilege roles (backups: ``app/cli/ops_backup.py``)."""

from __future__ import annotations

import typer

from app.cli.common import UserError
from app.cli.groups import db_app
from app.config import get_settings
from app.db.session import session_scope
from app.maintenance import roles as ops_roles

_PREFIX_OPT = typer.Option(None, "--prefix", help="Role name prefix (DB_ROLE_PREFIX).")
_SHOW_SQL_OPT = typer.Option(False, "--show-sql", help="Print the statements only.")


@db_app.command("roles")
def roles(
    prefix: str | None = _PREFIX_OPT,
    show_sql: bool = _SHOW_SQL_OPT,
) -> None:
    """Create/update the worker, maintenance and reporting roles (idempotent).

    Run as the migration owner after every `db upgrade`. Also limits the audit_log
    maintenance bypass to members of <prefix>_maintenance.
    """
    try:
        names = ops_roles.RoleNames.for_prefix(prefix or get_settings().db_role_prefix)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if show_sql:
        for statement in ops_roles.statements(names, "<database>"):
            typer.echo(statement.strip() + ";")
        return
    with session_scope() as session:
        ops_roles.apply(session, names)
        owner = ops_roles.owner(session)
    typer.echo(
        f"roles up to date: worker={names.worker} maintenance={names.maintenance} "
        f"reporting={names.reporting}; migration owner={owner}"
    )
