"""Physical backups with pgBackRest (seed section 8): the primary backup of the database.

The database server archives every WAL segment into the repository itself
(``archive_command = pgbackrest ... archive-push %p``), at least every
``archive_timeout`` (60 s) when anything was written, so the recovery point stays within
a minute or so even on a quiet night: far inside the seed's RPO < 1 hour. The backup
service (``backup_service``) takes a full backup once a week and a differential every
other day; a restore replays the archived WAL on top of one to any moment.

The seed's retention, in pgBackRest's terms (``render_config``; docs/operations.md):

=====================  ===========================================================
seed                   pgBackRest
=====================  ===========================================================
daily for 30 days      ``repo1-retention-diff=30``: the last 30 differentials (six a
                       week beside the weekly full: about 35 days of dailies)
weekly for 90 days     ``repo1-retention-full-type=time``, ``repo1-retention-full=90``:
                       weekly fulls kept 90 days (plus the one that covers day 90);
                       the WAL between them too, so any point of the last 90 days
                       can be restored
monthly for 1 year     a second repository (``BACKUP_MONTHLY_REPO``, e.g. offsite) with
                       a full in the first backup of each month,
                       ``repo2-retention-full-type=time``, ``repo2-retention-full=365``;
                       its WAL only for the newest full (``repo2-retention-archive=1``)
=====================  ===========================================================

Both repositories are encrypted (``repoN-cipher-type=aes-256-cbc``); the passphrase
is ``BACKUP_CIPHER_PASS`` (a secret file), handed to pgBackRest in its environment,
never on a command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config import Settings, get_settings

ARCHIVE_TIMEOUT_SECONDS = 60
RETENTION_FULL_DAYS = 90
RETENTION_DIFF_COUNT = 30
MONTHLY_RETENTION_DAYS = 365
CIPHER = "aes-256-cbc"


# pgBackRest's error codes that mean "fix the set-up", not "the backup broke": missing or
# invalid options (configuration), a server running or a folder not empty where a restore
# needs neither, the database unreachable, no backup set to restore from.
_OPERATOR_CODES = frozenset({27, 31, 32, 33, 34, 37, 38, 40, 56, 75})
_ERROR_LINE = re.compile(r"ERROR: \[(\d+)\]: (.*)")


class PgBackRestError(RuntimeError):
    """pgBackRest exited non-zero; the message is its error, on one line.

    ``operator`` tells a set-up problem an operator can fix (exit 2) from a failure of
    the backup itself (exit 1).
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def operator(self) -> bool:
        return self.code in _OPERATOR_CODES

    @classmethod
    def from_output(cls, command: str, returncode: int, output: str) -> PgBackRestError:
        """pgBackRest prints wrapped, multi-line errors; keep the error itself."""
        flat = " ".join(line.strip() for line in output.splitlines() if line.strip())
        found = _ERROR_LINE.search(flat)
        if found is None:
            return cls(f"pgbackrest {command} failed ({returncode}): {flat[-300:]}", returncode)
        code, text = int(found.group(1)), found.group(2)
        text = text.split(" HINT: ")[0].split(" FileMissingError: ")[0]
        return cls(f"pgbackrest {command} failed [{code:03d}]: {text[:300]}", code)


def archive_command(stanza: str, config: Path | None = None) -> str:
    """The server's ``archive_command``: pgBackRest pushes each WAL segment."""
    config_opt = f" --config={config}" if config else ""
    return f"pgbackrest{config_opt} --stanza={stanza} archive-push %p"


def archive_settings(stanza: str, config: Path | None = None) -> dict[str, str]:
    """The server settings production runs with (docker/compose.yaml; the drill too)."""
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_timeout": str(ARCHIVE_TIMEOUT_SECONDS),
        "archive_command": archive_command(stanza, config),
    }


@dataclass(frozen=True)
class Layout:
    """Where things are, for ``render_config``."""

    stanza: str
    pg_path: Path
    socket_path: Path
    repo_paths: Mapping[int, Path]
    log_path: Path
    lock_path: Path
    spool_path: Path = Path("/var/spool/pgbackrest")
    pg_user: str = "postgres"
    pg_port: int | None = None
    monthly_repo: int = 0
    process_max: int = 2


# docker/compose.yaml's paths; docker/pgbackrest/pgbackrest.conf is render_config(COMPOSE)
# (a test keeps the two equal). Repository 2 stands for an offsite store (its own volume
# here; an object store in production: repo2-type=s3 and its credentials).
COMPOSE = Layout(
    stanza="premium",
    pg_path=Path("/var/lib/postgresql/data"),
    socket_path=Path("/var/run/postgresql"),
    repo_paths={1: Path("/var/lib/pgbackrest"), 2: Path("/var/lib/pgbackrest-monthly")},
    log_path=Path("/var/log/pgbackrest"),
    lock_path=Path("/tmp/pgbackrest"),
    pg_user="premium_notify",
    monthly_repo=2,
)


def render_config(layout: Layout) -> str:
    """pgbackrest.conf for ``layout`` with the production policy (retention, cipher)."""
    lines = [
        "# Generated by app/maintenance/pgbackrest.py (render_config); the retention",
        "# mapping is in its docstring and in docs/operations.md.",
        "[global]",
    ]
    for repo, path in sorted(layout.repo_paths.items()):
        lines += [f"repo{repo}-path={path}", f"repo{repo}-cipher-type={CIPHER}"]
        if repo == layout.monthly_repo:
            lines += [
                f"repo{repo}-retention-full-type=time",
                f"repo{repo}-retention-full={MONTHLY_RETENTION_DAYS}",
                f"repo{repo}-retention-archive-type=full",
                f"repo{repo}-retention-archive=1",
            ]
        else:
            lines += [
                f"repo{repo}-retention-full-type=time",
                f"repo{repo}-retention-full={RETENTION_FULL_DAYS}",
                f"repo{repo}-retention-diff={RETENTION_DIFF_COUNT}",
            ]
    lines += [
        "compress-type=zst",
        f"process-max={layout.process_max}",
        "start-fast=y",
        f"log-path={layout.log_path}",
        f"lock-path={layout.lock_path}",
        f"spool-path={layout.spool_path}",
        "log-level-console=off",  # stdout is for --output=json; problems go to stderr
        "log-level-stderr=warn",
        "log-level-file=info",
        "",
        f"[{layout.stanza}]",
        f"pg1-path={layout.pg_path}",
        f"pg1-socket-path={layout.socket_path}",
        f"pg1-user={layout.pg_user}",
    ]
    if layout.pg_port:
        lines.append(f"pg1-port={layout.pg_port}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BackupInfo:
    label: str
    type: str  # full, diff, incr
    repo: int
    start: datetime  # UTC, aware
    stop: datetime
    size: int  # database size at the backup
    repo_size: int  # bytes in the repository (compressed, encrypted)
    error: bool
    annotations: Mapping[str, str] = field(default_factory=dict)  # backup --annotation


@dataclass(frozen=True)
class StanzaInfo:
    status_code: int
    status: str
    backups: tuple[BackupInfo, ...]
    pg_major: int | None = None

    def good(self, repo: int | None = None) -> list[BackupInfo]:
        """Backups without errors, oldest first (of one repository when given)."""
        return [b for b in self.backups if not b.error and (repo is None or b.repo == repo)]


def parse_info(raw: Sequence[Mapping[str, Any]], stanza: str) -> StanzaInfo:
    """``pgbackrest info --output=json`` of one stanza."""
    for entry in raw:
        if entry.get("name") != stanza:
            continue
        status = entry.get("status", {})
        backups = []
        for b in entry.get("backup", []):
            ts = b.get("timestamp", {})
            info = b.get("info", {})
            backups.append(
                BackupInfo(
                    label=str(b["label"]),
                    type=str(b["type"]),
                    repo=int(b.get("database", {}).get("repo-key", 1)),
                    start=datetime.fromtimestamp(int(ts["start"]), UTC),
                    stop=datetime.fromtimestamp(int(ts["stop"]), UTC),
                    size=int(info.get("size", 0)),
                    repo_size=int(info.get("repository", {}).get("size", 0)),
                    error=bool(b.get("error", False)),
                    annotations={str(k): str(v) for k, v in (b.get("annotation") or {}).items()},
                )
            )
        backups.sort(key=lambda b: b.stop)
        code, message = int(status.get("code", -1)), str(status.get("message", ""))
        databases = entry.get("db") or [{}]
        version = str(databases[-1].get("version", "")).split(".")[0]
        major = int(version) if version.isdigit() else None
        return StanzaInfo(code, message, tuple(backups), major)
    return StanzaInfo(-1, f"stanza {stanza} not found", ())


@dataclass
class PgBackRest:
    """Runs pgBackRest commands for one stanza.

    ``user``: run as this OS user (the cluster's owner) when this process is root (the
    drill, the tests); in the containers the process already is that user.
    """

    stanza: str
    config: Path | None = None
    cipher_pass: str | None = None
    user: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    binary: str = "pgbackrest"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> PgBackRest:
        """From BACKUP_STANZA, BACKUP_PGBACKREST_CONFIG and BACKUP_CIPHER_PASS."""
        settings = settings or get_settings()
        secret = settings.backup_cipher_pass
        return cls(
            stanza=settings.backup_stanza,
            config=settings.backup_pgbackrest_config,
            cipher_pass=secret.get_secret_value() if secret else None,
        )

    def env(self) -> dict[str, str]:
        """This process's environment plus the repositories' passphrase."""
        env = dict(os.environ)
        env.update(self.extra_env)
        if self.cipher_pass:
            for repo in range(1, 5):  # pgBackRest reads an option per repository
                env[f"PGBACKREST_REPO{repo}_CIPHER_PASS"] = self.cipher_pass
        return env

    def run(self, command: str, *options: str, timeout: float | None = None) -> str:
        """Run one pgBackRest command; its stdout, or PgBackRestError with its stderr."""
        argv = [self.binary]
        if self.config:
            argv.append(f"--config={self.config}")
        argv += [f"--stanza={self.stanza}", *options, command]
        try:
            done = subprocess.run(
                argv,
                env=self.env(),
                user=self.user,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except FileNotFoundError:
            raise PgBackRestError(
                "pgbackrest is not installed (Debian package pgbackrest)"
            ) from None
        except subprocess.TimeoutExpired:
            raise PgBackRestError(f"pgbackrest {command} did not finish in {timeout} s") from None
        if done.returncode != 0:
            raise PgBackRestError.from_output(
                command, done.returncode, done.stderr.strip() or done.stdout.strip()
            )
        return done.stdout

    def stanza_create(self) -> None:
        """Idempotent: a stanza that exists and matches the cluster is left as it is."""
        self.run("stanza-create")

    def check(self) -> None:
        """The configuration, the repositories and WAL archiving work (forces a segment)."""
        self.run("check")

    def backup(
        self, kind: str, repo: int | None = None, annotations: Mapping[str, str] | None = None
    ) -> None:
        """A ``full``, ``diff`` or ``incr`` backup (then pgBackRest's own expire).

        ``annotations``: key/value pairs kept in the backup's manifest, in the repository
        (``info --output=json`` shows them): the audit chain heads of the backup service."""
        options = [f"--type={kind}"]
        if repo:
            options.append(f"--repo={repo}")
        options += [f"--annotation={k}={v}" for k, v in (annotations or {}).items()]
        self.run("backup", *options)

    def verify(self, repo: int | None = None) -> None:
        """Every backup and WAL file of the repository reads back and matches its checksum."""
        self.run("verify", *([f"--repo={repo}"] if repo else []))

    def info(self) -> StanzaInfo:
        """The stanza's backups, as the repository records them."""
        return parse_info(json.loads(self.run("info", "--output=json") or "[]"), self.stanza)

    def restore(
        self,
        pg_path: Path,
        *,
        target: datetime | None = None,
        archive_mode: str = "preserve",
        delta: bool = False,
        backup_set: str | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        """Restore into ``pg_path`` set to promote at ``target`` (None: the end of the WAL)."""
        options = [f"--pg1-path={pg_path}", f"--archive-mode={archive_mode}"]
        if target is not None:
            stamp = target.astimezone(UTC).isoformat(sep=" ")
            options += ["--type=time", f"--target={stamp}", "--target-action=promote"]
        if delta:
            options.append("--delta")
        if backup_set:
            options.append(f"--set={backup_set}")
        self.run("restore", *options, *extra)
