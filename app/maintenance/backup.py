"""Logical exports (the secondary backup): pg_dump, encrypted with age, verified, rotated.

The primary backups are physical (pgBackRest: ``app/maintenance/pgbackrest.py``); a
logical dump of the bank's database takes hours to restore. This export is the
portable copy: readable by any PostgreSQL of the same major version, for a table-level
recovery, a migration, or an auditor. ``premium-notify db export`` writes it,
``premium-notify db restore`` reads it back (verify, decrypt, restore, compare, re-apply
journalled erasures).

An export is taken inside one REPEATABLE READ transaction whose snapshot is exported to
pg_dump (``--snapshot``), so the per-table row counts and checksums stored beside it
describe exactly the data in it. pg_dump's output is streamed through age (to
``BACKUP_AGE_RECIPIENTS_FILE``): no clear copy ever touches the disk. The sidecar
``.json`` (no personal data: counts, checksums, digests) holds the SHA-256 of the
ciphertext, checked before anything is decrypted, and of the clear dump, checked after,
and the audit chain's heads of the last days (``audit verify --heads <sidecar>``).

Checksums are order-independent sums of md5 over each row's text (no sort, one pass,
constant memory). The session pins DateStyle, TimeZone and extra_float_digits so the
text of a row is the same on the source and on the restored server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from app.config import Settings, get_settings
from app.maintenance import encryption
from app.maintenance.backup_rotation import (
    NAME_RE,
    backup_time,
    rotate,
    to_keep,
    write_textfile,
)
from app.maintenance.pgconn import Conn
from app.maintenance.pgtools import BackupError, find_tool, server_major
from app.maintenance.repository import backup as repository
from app.maintenance.repository.backup import fingerprints

SUFFIX = ".dump.age"
CHUNK = 1 << 20

__all__ = [
    "NAME_RE",
    "BackupError",
    "Conn",
    "backup",
    "backup_time",
    "find_tool",
    "fingerprints",
    "restore",
    "rotate",
    "server_major",
    "to_keep",
    "write_textfile",
]


def sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup(
    conn: Conn, folder: Path, *, now: datetime | None = None, settings: Settings | None = None
) -> Path:
    """Export the database to ``folder/<db>_<UTC stamp>.dump.age`` with a ``.json`` sidecar."""
    settings = settings or get_settings()
    recipients = encryption.keys(settings).recipients
    now = now or datetime.now(UTC)
    encryption.private_dir(folder)
    pg_dump = find_tool("pg_dump", server_major(conn))
    target = folder / f"{conn.database}_{now:%Y%m%dT%H%M%SZ}{SUFFIX}"
    partial = target.with_name(target.name + ".partial")
    started = time.monotonic()
    pg = conn.connect()
    try:
        pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
        snapshot = repository.export_snapshot(pg)
        with conn.tool_env() as env:
            clear_sha, clear_bytes = _dump_encrypted(
                [str(pg_dump), "--format=custom", f"--snapshot={snapshot}"],
                env,
                encryption.encrypt_command(recipients, partial),
                partial,
            )
        tables = fingerprints(pg)  # same snapshot as the dump
        heads = repository.audit_chain_heads(pg)  # `audit verify --heads <sidecar>`
    finally:
        pg.rollback()
        pg.close()
    partial.chmod(0o600)
    os.replace(partial, target)
    meta = {
        "database": conn.database,
        "created_at_utc": now.replace(tzinfo=None).isoformat(timespec="seconds"),
        "pg_dump": str(pg_dump),
        "encryption": "age",
        "bytes": target.stat().st_size,
        "sha256": sha256(target),
        "plain_bytes": clear_bytes,
        "plain_sha256": clear_sha,
        "seconds": round(time.monotonic() - started, 2),
        "tables": tables,
        "audit_chain_heads": heads,
    }
    encryption.write_private(
        Path(str(target) + ".json"), (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    )
    return target


def _dump_encrypted(
    dump_argv: list[str], env: dict[str, str], age_argv: list[str], partial: Path
) -> tuple[str, int]:
    """pg_dump | age, hashing the clear stream on the way; (sha256, bytes) of the dump."""
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)  # age -o writes into it; created first so it is 0600 from the start
    dump = subprocess.Popen(dump_argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    age = subprocess.Popen(age_argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    source, sink = dump.stdout, age.stdin
    assert source is not None and sink is not None
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in iter(lambda: _read(source), b""):
            digest.update(chunk)
            size += len(chunk)
            sink.write(chunk)
    except BrokenPipeError:
        dump.kill()  # age died: its error is reported below; pg_dump must not block
    finally:
        try:
            sink.close()
        except BrokenPipeError:
            pass
        dump_err = dump.stderr.read() if dump.stderr else b""
        age_err = age.stderr.read() if age.stderr else b""
        dump_rc, age_rc = dump.wait(), age.wait()
    if dump_rc != 0 or age_rc != 0:
        partial.unlink(missing_ok=True)
        which = "pg_dump" if dump_rc != 0 else "age"
        err = (dump_err if dump_rc != 0 else age_err).decode("utf-8", "replace").strip()
        raise BackupError(f"{which} failed: {err[-500:]}")
    return digest.hexdigest(), size


def _read(stream: IO[bytes]) -> bytes:
    return stream.read(CHUNK)


def read_sidecar(dump: Path) -> dict[str, Any] | None:
    """The export's ``.json`` sidecar, or None when there is none."""
    sidecar = Path(str(dump) + ".json")
    return json.loads(sidecar.read_text()) if sidecar.exists() else None


def restore(
    dump: Path,
    target: Conn,
    *,
    create: bool = True,
    no_owner: bool = False,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Restore an export into ``target`` (created if missing, refused if not empty).

    Order: the ciphertext's SHA-256 against the sidecar (before decrypting anything),
    decrypt into a private temporary folder, the clear dump's SHA-256, pg_restore in one
    transaction, every table's count and checksum against the sidecar. Journalled
    erasures are re-applied by the caller (``restore_and_reapply``).
    """
    settings = settings or get_settings()
    meta = read_sidecar(dump)
    if meta and sha256(dump) != meta["sha256"]:
        raise BackupError(f"{dump.name}: SHA-256 does not match its .json sidecar")
    _create_empty(target, create)
    pg_restore = find_tool("pg_restore", server_major(target))
    workdir = Path(tempfile.mkdtemp(prefix="pn-restore-"))  # 0700
    try:
        clear = workdir / "restore.dump"
        if dump.name.endswith(".age"):
            encryption.decrypt_file(dump, clear, settings.backup_age_identity_file)
            if meta and meta.get("plain_sha256") and sha256(clear) != meta["plain_sha256"]:
                raise BackupError(f"{dump.name}: the decrypted dump does not match its sidecar")
        else:  # an export of an earlier version (clear pg_dump file)
            clear = dump
        args = [str(pg_restore), "--exit-on-error", "--single-transaction"]
        if no_owner:
            args += ["--no-owner", "--no-privileges"]
        with target.tool_env() as env:
            done = subprocess.run(
                [*args, "--dbname=service=pn", str(clear)],
                env=env,
                capture_output=True,
                text=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
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
    return {"tables": restored, "verified": bool(meta), "meta": meta}


def _create_empty(target: Conn, create: bool) -> None:
    admin = target.with_database("postgres").connect()
    try:
        admin.autocommit = True
        if not repository.database_exists(admin, target.database):
            if not create:
                raise BackupError(f"database {target.database} does not exist (use --create)")
            repository.create_database(admin, target.database)
    finally:
        admin.close()
    pg = target.connect()
    try:
        existing = repository.public_table_count(pg)
    finally:
        pg.close()
    if existing:
        raise BackupError(f"database {target.database} is not empty ({existing} tables)")


def export_time(meta: dict[str, Any] | None, dump: Path) -> datetime | None:
    """When the export's snapshot was taken (UTC, naive), from the sidecar or the name."""
    if meta and meta.get("created_at_utc"):
        return datetime.fromisoformat(str(meta["created_at_utc"]))
    stamp = backup_time(dump)
    return stamp.replace(tzinfo=None) if stamp else None
