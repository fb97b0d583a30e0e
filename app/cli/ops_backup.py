"""``premium-notify db backup|backups|export|restore|pitr|erasures``: backups and recovery.

Physical backups are pgBackRest's (``db backup``; ``--schedule`` is the backup service
of the compose file); the logical export is the secondary, encrypted copy (``db export``
/ ``db restore``); ``db pitr`` restores the cluster to a point in time. Every restore
re-applies the GDPR erasure journal before the database is opened. docs/operations.md
is the runbook.
"""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType

import typer

from app.cli.common import OutputFormat, UserError, emit_rows, fail
from app.cli.groups import db_app
from app.config import get_settings
from app.db.session import resolve_database_url
from app.maintenance import backup as ops_backup
from app.maintenance import (
    backup_rotation,
    backup_schedule,
    backup_service,
    encryption,
    erasure_journal,
    erasure_replay,
    pitr,
)
from app.maintenance.pgbackrest import PgBackRest, PgBackRestError
from app.maintenance.pgconn import Conn

RESTORE_ERRORS = (
    ops_backup.BackupError,
    encryption.EncryptionError,
    erasure_journal.JournalError,
)


class BackupType(StrEnum):
    AUTO = "auto"
    FULL = "full"
    DIFF = "diff"
    INCR = "incr"


_TYPE_OPT = typer.Option(
    BackupType.AUTO,
    "--type",
    help="auto: full when none since the weekly full day (BACKUP_FULL_WEEKDAY), else diff.",
)
_REPO_OPT = typer.Option(None, "--repo", min=1, max=4, help="pgBackRest repository (default 1).")
_SCHEDULE_OPT = typer.Option(
    False, "--schedule", help="Run as the backup service (the compose backup container)."
)
_FOLDER_OPT = typer.Option(None, "--dir", help="Export folder (BACKUP_DIR).")
_NO_ROTATE_OPT = typer.Option(False, "--no-rotate", help="Keep every old export.")
_DUMP_OPT = typer.Argument(..., exists=True, dir_okay=False, help="A .dump.age export.")
_TARGET_DB_OPT = typer.Option(
    None, "--target-db", help="Database name on the same server (created if missing)."
)
_TARGET_URL_OPT = typer.Option(None, "--target-url", help="Or a full URL.")
_NO_OWNER_OPT = typer.Option(False, "--no-owner", help="Skip ownership and grants.")
_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
_VERIFY_OPT = typer.Option(False, "--verify", help="Also read back every file (slow).")
_PGDATA_OPT = typer.Option(..., "--pgdata", help="Data folder to restore into (empty).")
_TARGET_TIME_OPT = typer.Option(
    None,
    "--target-time",
    help="ISO 8601 with a UTC offset (2026-11-30T14:05:00+02:00); default: the end of "
    "the archived WAL.",
)
_DELTA_OPT = typer.Option(False, "--delta", help="Restore over the existing data folder.")
_PG_BIN_OPT = typer.Option(None, "--pg-bin", help="PostgreSQL binaries (default: Debian's).")
_OS_USER_OPT = typer.Option(None, "--os-user", help="Run the server as this user (when root).")
_NO_ARCHIVE_OPT = typer.Option(
    False, "--no-archive", help="A trial restore: the restored server does not archive."
)
_SINCE_OPT = typer.Option(
    None, "--reapply-since", help="Re-apply entries newer than this (ISO 8601 with offset)."
)


def _database_conn() -> Conn | None:
    return Conn.from_url(resolve_database_url()) if get_settings().database_url else None


def _parse_time(text: str, option: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"{option}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise UserError(f"{option}: give a UTC offset (e.g. +02:00 or Z): {text!r}")
    return value


@db_app.command("backup")
def backup(
    kind: BackupType = _TYPE_OPT, repo: int | None = _REPO_OPT, schedule: bool = _SCHEDULE_OPT
) -> None:
    """A pgBackRest backup now (then the textfile metrics), or --schedule: the service."""
    settings = get_settings()
    service = backup_service.BackupService.from_settings(_database_conn(), settings)
    if schedule:
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        raise typer.Exit(service.serve(stop))
    try:
        service.pgbr.stanza_create()
        chosen = kind.value
        if kind is BackupType.AUTO and repo not in (None, 1):
            chosen = "full"  # another repository holds monthly fulls only
        elif kind is BackupType.AUTO:
            due = backup_schedule.plan(
                datetime.now(UTC),
                list(service.pgbr.info().good()),
                backup_service.rules_from(settings),
            )
            chosen = due.daily or "diff"
        heads = service.backup(chosen, repo)
        info = service.pgbr.info()
        service.publish(info)
    except PgBackRestError as exc:
        service.fail(exc, announce=False)
        if exc.operator:
            raise UserError(str(exc)) from None
        raise fail(str(exc), code=1) from None  # a failed backup is not an operator error
    newest = info.good(repo or 1)[-1]
    typer.echo(
        f"{newest.type} backup {newest.label} (repository {newest.repo}): database "
        f"{newest.size} bytes, {newest.repo_size} bytes stored, "
        f"{(newest.stop - newest.start).total_seconds():.0f} s"
    )
    if heads is not None:
        typer.echo(f"audit chain heads: {heads} (audit verify --heads)")


@db_app.command("backups")
def backups(verify: bool = _VERIFY_OPT, fmt: OutputFormat = _FMT_OPT) -> None:
    """List the backups and check the stanza and WAL archiving (pgbackrest info + check)."""
    pgbr = PgBackRest.from_settings()
    try:
        info = pgbr.info()
        pgbr.check()
        if verify:
            for repo in sorted({b.repo for b in info.backups}) or [1]:
                pgbr.verify(repo)
    except PgBackRestError as exc:
        if exc.operator:
            raise UserError(str(exc)) from None
        raise fail(str(exc), code=1) from None
    rows = [
        {
            "label": b.label,
            "type": b.type,
            "repo": b.repo,
            "started": b.start,
            "finished": b.stop,
            "database_bytes": b.size,
            "stored_bytes": b.repo_size,
            "error": b.error,
        }
        for b in info.backups
    ]
    emit_rows(rows, list(rows[0]) if rows else ["label"], fmt,
              title=f"Stanza {pgbr.stanza}: {info.status}")
    typer.echo("check: ok" + ("; verify: ok" if verify else ""), err=True)


@db_app.command("export")
def export(folder: Path | None = _FOLDER_OPT, no_rotate: bool = _NO_ROTATE_OPT) -> None:
    """Logical export: pg_dump through age, sidecar with counts/checksums, rotation."""
    settings = get_settings()
    folder = folder or settings.backup_dir
    conn = Conn.from_url(resolve_database_url())
    try:
        started = datetime.now(UTC)
        dump = ops_backup.backup(conn, folder, settings=settings)
    except (ops_backup.BackupError, encryption.EncryptionError) as exc:
        raise UserError(str(exc)) from None
    deleted = [] if no_rotate else backup_rotation.rotate(folder, conn.database)
    seconds = (datetime.now(UTC) - started).total_seconds()
    backup_rotation.write_textfile(
        backup_service.export_metrics_path(settings), conn.database, dump, seconds
    )
    typer.echo(f"export {dump} ({dump.stat().st_size} bytes); rotated out {len(deleted)}")


@db_app.command("restore")
def restore(
    dump: Path = _DUMP_OPT,
    target_db: str | None = _TARGET_DB_OPT,
    target_url: str | None = _TARGET_URL_OPT,
    no_owner: bool = _NO_OWNER_OPT,
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """Restore an export into an empty database, verify it, re-apply journalled erasures."""
    if bool(target_db) == bool(target_url):
        raise UserError("give exactly one of --target-db or --target-url")
    if target_url:
        target = Conn.from_url(target_url)
    else:
        assert target_db is not None
        target = Conn.from_url(resolve_database_url()).with_database(target_db)
    try:
        result = ops_backup.restore(dump, target, no_owner=no_owner)
        scope, engine = erasure_replay.scope_on(target.url())
        try:
            since = ops_backup.export_time(result["meta"], dump)
            report = erasure_replay.reapply(scope, since)
        finally:
            engine.dispose()
    except RESTORE_ERRORS as exc:
        raise UserError(str(exc)) from None
    rows = [{"table": t, **v} for t, v in sorted(result["tables"].items())]
    emit_rows(rows, ["table", "rows", "checksum"], fmt, title=f"Restored into {target.database}")
    typer.echo(report.line(), err=True)
    if not result["verified"]:
        typer.echo(
            "warning: no .json sidecar next to the dump: nothing to verify against", err=True
        )


@db_app.command("pitr")
def point_in_time(
    pgdata: Path = _PGDATA_OPT,
    target_time: str | None = _TARGET_TIME_OPT,
    delta: bool = _DELTA_OPT,
    pg_bin: Path | None = _PG_BIN_OPT,
    os_user: str | None = _OS_USER_OPT,
    no_archive: bool = _NO_ARCHIVE_OPT,
) -> None:
    """Restore the cluster to a time, re-apply erasures on a private socket, stop it."""
    target = _parse_time(target_time, "--target-time") if target_time else None
    if not delta and pgdata.exists() and any(pgdata.iterdir()):
        raise UserError(f"{pgdata} is not empty (--delta restores over it)")
    url = Conn.from_url(resolve_database_url())
    pgbr = PgBackRest.from_settings()
    pgbr.user = os_user  # pgBackRest writes the restored files as the server's owner
    try:
        major = pgbr.info().pg_major or 15
        cluster = pitr.Cluster(
            pg_bin=pg_bin or Path(f"/usr/lib/postgresql/{major}/bin"),
            database=url.database,
            db_user=url.user or "postgres",
            os_user=os_user,
        )
        archive_mode = "off" if no_archive else "preserve"
        result = pitr.restore_to_time(
            pgbr, pgdata, target, cluster, archive_mode=archive_mode, delta=delta
        )
    except (PgBackRestError, pitr.PitrError, erasure_journal.JournalError) as exc:
        if isinstance(exc, PgBackRestError) and exc.operator:
            raise UserError(str(exc)) from None
        raise fail(str(exc), code=1) from None
    typer.echo(
        f"restored {pgdata} in {result.restore_seconds} s, WAL replayed in "
        f"{result.recovery_seconds} s; last transaction recovered: {result.recovered_to}"
    )
    if result.replay is not None:
        typer.echo(result.replay.line())
    typer.echo(f"server log of the recovery: {result.log}")
    typer.echo("stopped: start it as usual (workers reconnect by themselves)")


@db_app.command("erasures")
def erasures(reapply_since: str | None = _SINCE_OPT) -> None:
    """Check the erasure journal's hash chain; optionally re-apply entries to DATABASE_URL."""
    path = erasure_journal.path()
    try:
        count = len(erasure_journal.verify(path))
        typer.echo(f"erasure journal {path}: {count} entries, hash chain intact")
        if reapply_since is not None:
            since = _parse_time(reapply_since, "--reapply-since")
            scope, engine = erasure_replay.scope_on(resolve_database_url())
            try:
                naive = since.astimezone(UTC).replace(tzinfo=None)
                typer.echo(erasure_replay.reapply(scope, naive).line())
            finally:
                engine.dispose()
    except (erasure_journal.JournalError, encryption.EncryptionError) as exc:
        raise UserError(str(exc)) from None
