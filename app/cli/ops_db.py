"""``premium-notify db roles``: least-privilege roles (backups: ``app/cli/ops_backup.py``)."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import UserError
from app.cli.groups import db_app
from app.config import get_settings
from app.db.session import session_scope
from app.maintenance import roles as ops_roles

_PREFIX_OPT = typer.Option(None, "--prefix", help="Role name prefix (DB_ROLE_PREFIX).")
_SHOW_SQL_OPT = typer.Option(False, "--show-sql", help="Print the statements only.")
_LOGINS_OPT = typer.Option(
    None,
    "--logins",
    help="A folder of password files named after the services (and 'owner'): "
    "creates or updates <prefix>_<service>_login for each.",
)


@db_app.command("roles")
def roles(
    prefix: str | None = _PREFIX_OPT,
    show_sql: bool = _SHOW_SQL_OPT,
    logins: Path | None = _LOGINS_OPT,
) -> None:
    """Create/update the owner and one role per service with only its grants (idempotent).

    Run by an administrator after every `db upgrade` (compose: the one-shot `roles` step).
    """
    try:
        names = ops_roles.RoleNames.for_prefix(prefix or get_settings().db_role_prefix)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if show_sql:
        for statement in ops_roles.statements(names, "<database>"):
            typer.echo(statement.strip() + ";")
        return
    if logins is not None and not logins.is_dir():
        raise UserError(f"--logins {logins}: not a folder")
    with session_scope() as session:
        ops_roles.apply(session, names, logins)
        owner = ops_roles.owner(session)
        problem = ops_roles.owners_problem(session, names)
    if problem:
        raise UserError(problem)
    groups = ", ".join(names.group(s) for s in ops_roles.SERVICE_GRANTS)
    typer.echo(f"roles up to date: {groups}; tables owned by {owner}")
