"""Point-in-time recovery: restore, replay, re-apply erasures, and only then open.

``restore_to_time`` is the one procedure behind ``premium-notify db pitr`` and the
recovery drill:

1. ``pgbackrest restore`` into an empty data folder (or ``delta`` over the old one), set to
   promote at the target time (or at the end of the archived WAL);
2. start the restored cluster on a private Unix socket only (``listen_addresses=''``, a
   0700 folder of its own): no worker, no operator tool can reach it yet;
3. wait until the WAL is replayed and the server promoted;
4. re-apply every journalled GDPR erasure newer than the recovered point
   (``erasure_replay``): an erased customer never comes back with a restore;
5. stop it cleanly. The operator then starts it as usual and the workers reconnect.

The restored cluster keeps archiving (``archive_mode`` preserved) on a new timeline, so
the next backup and any later PITR continue from it; ``archive_mode="off"`` is for trial
restores beside a live primary.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.config import Settings, get_settings
from app.maintenance import erasure_replay
from app.maintenance.pgbackrest import PgBackRest
from app.maintenance.pgconn import Conn
from app.maintenance.repository import recovery as repository

PRIVATE_PORT = 5432  # socket-only, in a private folder: no clash with anything listening


class PitrError(RuntimeError):
    """The restore or the recovery failed; the message says where (and the server log)."""


@dataclass(frozen=True)
class Cluster:
    """How to run the restored server: its binaries, its OS owner, who connects."""

    pg_bin: Path
    database: str
    db_user: str
    os_user: str | None = None  # when this process is root (initdb/postgres refuse root)


@dataclass
class PitrResult:
    restore_seconds: float
    recovery_seconds: float
    recovered_to: datetime | None  # commit time of the last replayed transaction (UTC)
    replay: erasure_replay.ReplayReport | None = None
    log: Path | None = None
    notes: list[str] = field(default_factory=list)


def restore_to_time(
    pgbr: PgBackRest,
    pgdata: Path,
    target: datetime | None,
    cluster: Cluster,
    *,
    archive_mode: str = "preserve",
    delta: bool = False,
    reapply_erasures: bool = True,
    settings: Settings | None = None,
    timeout: float = 3600,
    inspect: Callable[[Conn], None] | None = None,
    log: Path | None = None,
) -> PitrResult:
    """Steps 1-5 above; returns durations, the recovered point and the erasure replay.

    ``inspect`` is called with the private connection once the server is promoted and
    before the erasures are re-applied: the drill compares the restored state there.
    ``log``: the server's log while it recovers (default: a new file in the temp folder).
    """
    settings = settings or get_settings()
    if not delta and pgdata.exists() and any(pgdata.iterdir()):
        raise PitrError(f"{pgdata} is not empty (use delta to restore over it)")
    _prepare(pgdata, cluster.os_user)
    started = time.monotonic()
    pgbr.restore(pgdata, target=target, archive_mode=archive_mode, delta=delta)
    restored = time.monotonic()
    socket_dir = Path(tempfile.mkdtemp(prefix="pn-pitr-"))
    _chown(socket_dir, cluster.os_user)
    # The server's log while it recovers: a temporary file (the data folder's parent may
    # not be writable, e.g. /var/lib/postgresql in the image); its path is in the result.
    if log is None:
        fd, name = tempfile.mkstemp(prefix="pn-pitr-", suffix=".log")
        os.close(fd)
        log = Path(name)
    log.touch(mode=0o600, exist_ok=True)
    _chown(log, cluster.os_user)
    conn = Conn(str(socket_dir), str(PRIVATE_PORT), cluster.db_user, None, cluster.database)
    try:
        _pg_ctl(cluster, pgbr, "start", pgdata, log, socket_dir, timeout)
        recovered_to = _wait_promoted(conn, log, timeout)
        replayed = time.monotonic() - restored
        result = PitrResult(round(restored - started, 2), round(replayed, 2), recovered_to, log=log)
        if inspect is not None:
            inspect(conn)
        if reapply_erasures:
            since = target.astimezone(UTC).replace(tzinfo=None) if target else None
            if since is None and recovered_to is not None:
                since = recovered_to.astimezone(UTC).replace(tzinfo=None)
            scope, engine = erasure_replay.scope_on(conn.url())
            try:
                result.replay = erasure_replay.reapply(scope, since, settings=settings)
            finally:
                engine.dispose()
        return result
    finally:
        try:
            _pg_ctl(cluster, pgbr, "stop", pgdata, log, socket_dir, timeout)
        finally:
            shutil.rmtree(socket_dir, ignore_errors=True)


def _prepare(pgdata: Path, os_user: str | None) -> None:
    pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
    pgdata.chmod(0o700)
    _chown(pgdata, os_user)


def _chown(path: Path, os_user: str | None) -> None:
    if os_user is not None and os.geteuid() == 0:
        entry = pwd.getpwnam(os_user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _pg_ctl(
    cluster: Cluster,
    pgbr: PgBackRest,
    action: str,
    pgdata: Path,
    log: Path,
    socket_dir: Path,
    timeout: float,
) -> None:
    argv = [str(cluster.pg_bin / "pg_ctl"), "-D", str(pgdata), "-w", "-t", str(int(timeout))]
    if action == "start":
        private = (
            f"-c listen_addresses='' -c unix_socket_directories='{socket_dir}' "
            f"-c port={PRIVATE_PORT}"
        )
        argv += ["-l", str(log), "-o", private, "start"]
    else:
        argv += ["-m", "fast", "stop"]
    # The server's restore_command (archive-get) needs the repository passphrase.
    done = subprocess.run(
        argv, env=pgbr.env(), user=cluster.os_user, capture_output=True, text=True
    )
    if done.returncode != 0 and action == "start":
        raise PitrError(f"the restored server did not start: {_log_tail(log)}")


def _wait_promoted(conn: Conn, log: Path, timeout: float) -> datetime | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            pg = conn.connect()
            try:
                in_recovery, replayed = repository.recovery_state(pg)
            finally:
                pg.close()
            if not in_recovery:
                return replayed
        except Exception as exc:  # noqa: BLE001 - starting up, or recovery stopped it
            if "No such file" in str(exc) and not _server_alive(log):
                raise PitrError(f"recovery stopped: {_log_tail(log)}") from None
        if time.monotonic() > deadline:
            raise PitrError(f"still recovering after {timeout:.0f} s: {_log_tail(log)}")
        time.sleep(0.2)


def _server_alive(log: Path) -> bool:
    return "database system is shut down" not in _log_tail(log, 4000)


def _log_tail(log: Path, chars: int = 800) -> str:
    try:
        return log.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return "(no server log)"
