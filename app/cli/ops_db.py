"""``premium-notify db roles|backup|restore``: least-privilege roles and backups."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from app.cli.common import OutputFormat, UserError, emit_rows
from app.cli.groups import db_app
from app.config import get_settings
from app.db.session import resolve_database_url, session_scope
from app.maintenance import backup as ops_backup
from app.maintenance import roles as ops_roles

_PREFIX_OPT = typer.Option(None, "--prefix", help="Role name prefix (DB_ROLE_PREFIX).")
_SHOW_SQL_OPT = typer.Option(False, "--show-sql", help="Print the statements only.")
_FOLDER_OPT = typer.Option(None, "--dir", help="Backup folder (BACKUP_DIR).")
_NO_ROTATE_OPT = typer.Option(False, "--no-rotate", help="Keep every old backup.")
_DUMP_OPT = typer.Argument(..., exists=True, dir_okay=False, help="A .dump file.")
_TARGET_DB_OPT = typer.Option(
    None, "--target-db", help="Database name on the same server (created if missing)."
)
_TARGET_URL_OPT = typer.Option(None, "--target-url", help="Or a full URL.")
_NO_OWNER_OPT = typer.Option(False, "--no-owner", help="Skip ownership and grants.")
_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")


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


@db_app.command("backup")
def backup(
    folder: Path | None = _FOLDER_OPT,
    no_rotate: bool = _NO_ROTATE_OPT,
) -> None:
    """pg_dump -Fc with per-table counts/checksums, rotation, and a .prom success file."""
    settings = get_settings()
    folder = folder or settings.backup_dir
    conn = ops_backup.Conn.from_url(resolve_database_url())
    started = time.monotonic()
    try:
        dump = ops_backup.backup(conn, folder)
    except ops_backup.BackupError as exc:
        raise UserError(str(exc)) from None
    deleted = [] if no_rotate else ops_backup.rotate(folder, conn.database)
    prom = settings.backup_metrics_file or folder / "pn_backup.prom"
    ops_backup.write_textfile(prom, conn.database, dump, time.monotonic() - started)
    typer.echo(f"backup {dump} ({dump.stat().st_size} bytes); rotated out {len(deleted)}")


@db_app.command("restore")
def restore(
    dump: Path = _DUMP_OPT,
    target_db: str | None = _TARGET_DB_OPT,
    target_url: str | None = _TARGET_URL_OPT,
    no_owner: bool = _NO_OWNER_OPT,
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """Restore into an empty database and verify counts and checksums per table."""
    if bool(target_db) == bool(target_url):
        raise UserError("give exactly one of --target-db or --target-url")
    if target_url:
        target = ops_backup.Conn.from_url(target_url)
    else:
        assert target_db is not None
        target = ops_backup.Conn.from_url(resolve_database_url()).with_database(target_db)
    try:
        result = ops_backup.restore(dump, target, no_owner=no_owner)
    except ops_backup.BackupError as exc:
        raise UserError(str(exc)) from None
    rows = [{"table": t, **v} for t, v in sorted(result["tables"].items())]
    emit_rows(rows, ["table", "rows", "checksum"], fmt, title=f"Restored into {target.database}")
    if not result["verified"]:
        typer.echo(
            "warning: no .json sidecar next to the dump: nothing to verify against", err=True
        )
