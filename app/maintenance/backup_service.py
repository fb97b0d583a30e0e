"""The backup service: what the compose ``backup`` container runs (``scripts/backup --schedule``).

On start it creates the stanza if needed (idempotent) and runs ``pgbackrest check`` (the
repositories answer and the server's WAL archiving works). Then, every minute: ask the
repository what it holds, take what the schedule says is missing (``backup_schedule``),
``verify`` the repository after each full backup, write the weekly logical export, and
refresh the textfile metrics.

It fails loudly. Any failed step publishes ``pn_backup_last_failure_timestamp_seconds``
and ends the process with exit code 1: the container's restart policy starts it again,
the schedule retries what is still missing, and while nothing succeeds the
``BackupMissing`` alert fires after 24 hours. Nothing is swallowed. SIGTERM (``docker
stop``) ends it cleanly with 0.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any

from app.config import Settings, get_settings
from app.maintenance import backup, backup_metrics, backup_rotation, encryption
from app.maintenance.backup_schedule import Plan, Rules, next_slot, plan
from app.maintenance.pgbackrest import PgBackRest, StanzaInfo
from app.maintenance.pgconn import Conn
from app.maintenance.repository import backup as backup_repository
from app.maintenance.repository import recovery as repository

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0


def rules_from(settings: Settings) -> Rules:
    """The schedule's rules from the BACKUP_* settings."""
    hour, minute = (int(x) for x in settings.backup_time.split(":"))
    return Rules(
        at=clock_time(hour, minute),
        tz=settings.tz,
        full_weekday=settings.backup_full_weekday,
        monthly_repo=settings.backup_monthly_repo,
        export_weekday=settings.backup_export_weekday,
    )


def metrics_path(settings: Settings) -> Path:
    """The physical backups' textfile (BACKUP_METRICS_FILE)."""
    return settings.backup_metrics_file or settings.backup_dir / "pn_backup.prom"


def heads_dir(settings: Settings) -> Path:
    """Where the audit chain heads of each physical backup are kept (BACKUP_DIR)."""
    return settings.backup_dir / "audit-heads"


def head_annotations(heads: list[dict[str, Any]]) -> dict[str, str]:
    """The audit chain heads as pgBackRest annotations: ``audit-head-<day>=<seq>:<seal>``."""
    return {f"audit-head-{h['day']}": f"{h['seq']}:{h['seal']}" for h in heads}


def export_metrics_path(settings: Settings) -> Path:
    """The logical export's textfile, beside the physical one."""
    physical = metrics_path(settings)
    return physical.with_name(physical.stem + "_export.prom")


@dataclass
class BackupService:
    settings: Settings
    pgbr: PgBackRest
    conn: Conn | None  # the database, for exports and pg_stat_archiver
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    say: Callable[[str], None] = field(default=print)

    @classmethod
    def from_settings(cls, conn: Conn | None, settings: Settings | None = None) -> BackupService:
        settings = settings or get_settings()
        return cls(settings, PgBackRest.from_settings(settings), conn)

    def start(self) -> None:
        """Create the stanza if needed and check the repositories and WAL archiving."""
        self.pgbr.stanza_create()
        self.pgbr.check()
        self.say(f"backup service: stanza {self.pgbr.stanza} ok, WAL archiving checked")

    def tick(self) -> Plan:
        """One round: take what is due, then refresh the metrics. Raises on any failure."""
        info = self.pgbr.info()
        due = plan(self.clock(), list(info.good()), rules_from(self.settings), self._last_export())
        if due.daily:
            self.backup(due.daily, None)
            if due.daily == "full":
                self.pgbr.verify(1)
                self.say("backup service: repository 1 verified")
        if due.monthly:
            self.backup("full", self.settings.backup_monthly_repo)
            self.pgbr.verify(self.settings.backup_monthly_repo)
        if due.export and self.conn is not None:
            self._export()
        if due.anything:
            info = self.pgbr.info()
        self.publish(info)
        return due

    def backup(self, kind: str, repo: int | None) -> Path | None:
        """One physical backup annotated with the audit chain's heads, then its heads file
        (None without a database connection: nothing to read the heads from)."""
        started = time.monotonic()
        heads = self._chain_heads()
        self.pgbr.backup(kind, repo, head_annotations(heads or []))
        where = f"repository {repo}" if repo else "the daily repository"
        seconds = time.monotonic() - started
        self.say(f"backup service: {kind} backup into {where} in {seconds:.1f} s")
        if heads is None:
            return None
        made = self.pgbr.info().good(repo or 1)[-1]
        document = {
            "stanza": self.pgbr.stanza,
            "backup": made.label,
            "type": made.type,
            "repo": made.repo,
            "heads_read_at_utc": self.clock().replace(tzinfo=None).isoformat(timespec="seconds"),
            "heads": heads,
        }
        folder = encryption.private_dir(heads_dir(self.settings))
        path = folder / f"{self.pgbr.stanza}_{made.label}.json"
        encryption.write_private(path, (json.dumps(document, indent=2) + "\n").encode())
        return path

    def _chain_heads(self) -> list[dict[str, Any]] | None:
        """The last seal of today and yesterday (read just before the backup starts)."""
        if self.conn is None:
            return None
        pg = self.conn.connect()
        try:
            return backup_repository.audit_chain_heads(pg, days=2)
        finally:
            pg.close()

    def _export(self) -> None:
        folder = self.settings.backup_dir
        started = time.monotonic()
        assert self.conn is not None
        dump = backup.backup(self.conn, folder, settings=self.settings)
        deleted = backup_rotation.rotate(folder, self.conn.database)
        seconds = time.monotonic() - started
        backup_rotation.write_textfile(
            export_metrics_path(self.settings), self.conn.database, dump, seconds
        )
        self.say(f"backup service: logical export {dump.name}; rotated out {len(deleted)}")

    def _last_export(self) -> datetime | None:
        if self.conn is None:
            return None
        stamps = [
            t
            for p in self.settings.backup_dir.glob(f"{self.conn.database}_*.dump*")
            if not p.name.endswith((".json", ".partial")) and (t := backup.backup_time(p))
        ]
        return max(stamps, default=None)

    def publish(self, info: StanzaInfo, failed_at: float | None = None) -> None:
        """Rewrite the textfile from the repository's record (and the server's archiver)."""
        path = metrics_path(self.settings)
        failure = failed_at if failed_at is not None else backup_metrics.previous_failure(path)
        body = backup_metrics.render(
            self.pgbr.stanza,
            info,
            self.clock(),
            monthly_repo=self.settings.backup_monthly_repo,
            archiver=self._archiver(),
            last_failure=failure,
        )
        backup_metrics.write(path, body)

    def _archiver(self) -> backup_metrics.Archiver | None:
        if self.conn is None:
            return None
        try:
            pg = self.conn.connect()
            try:
                return backup_metrics.Archiver(*repository.archiver(pg))
            finally:
                pg.close()
        except Exception as exc:  # noqa: BLE001 - the metrics of the backups still count
            # INFO: the service logs it; a one-shot CLI run reports its own error instead.
            log.info("pg_stat_archiver not readable: %s", type(exc).__name__)
            return None

    def fail(self, error: Exception, announce: bool = True) -> None:
        """Publish the failure (keeping the last good figures), then the caller exits 1.

        ``announce=False``: the caller (a one-shot CLI run) prints the error itself.
        """
        try:
            info = self.pgbr.info()
        except Exception:  # noqa: BLE001 - the repository itself may be what failed
            info = StanzaInfo(-1, "unknown", ())
        self.publish(info, failed_at=time.time())
        if announce:
            self.say(f"backup service: FAILED: {error}")

    def serve(self, stop: threading.Event) -> int:
        """The loop; 0 when stopped, 1 after a failure (published first)."""
        try:
            self.start()
            while not stop.is_set():
                self.tick()
                now = self.clock()
                until_slot = (next_slot(now, rules_from(self.settings)) - now).total_seconds()
                stop.wait(max(1.0, min(TICK_SECONDS, until_slot)))
        except Exception as exc:  # noqa: BLE001 - every failure ends the service, loudly
            self.fail(exc)
            return 1
        return 0
