"""The GDPR erasure journal: every erasure, kept outside the database and its backups.

A restored backup brings back whatever was erased after it was taken. So every erasure
(``gdpr.erase``) is also appended here, and every restore (``db restore``, ``db pitr``)
re-applies the entries newer than the restored point before the database is opened to
workers (``erasure_replay``).

The journal is ``ERASURE_JOURNAL_DIR/journal.log``, append-only, one line per erasure::

    pnej1 <sha-256 of the previous line> <base64 of an age ciphertext>

The ciphertext (age, to ``BACKUP_AGE_RECIPIENTS_FILE``) holds ``{"id", "customer_id",
"at", "mode"}``: the customer's id and nothing else about them. The hash chain is in
clear, so a deleted, reordered or altered line is detected without the private key
(``verify``); reading the entries needs the identity (``read``).

The line is written in the caller's transaction, before its commit: if the journal
cannot be written the erasure rolls back. The reverse (journal written, commit failed)
leaves an entry for an erasure that was asked for and not done; replaying it is what
the operator wanted anyway.
"""

from __future__ import annotations

import base64
import contextvars
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.config import Settings, get_settings
from app.maintenance import encryption

MAGIC = "pnej1"
GENESIS = "0" * 64
FILE_NAME = "journal.log"

_replaying: contextvars.ContextVar[bool] = contextvars.ContextVar("erasure_replay", default=False)


class JournalError(RuntimeError):
    """The journal cannot be written or read, or its hash chain is broken."""


@dataclass(frozen=True)
class Entry:
    id: uuid.UUID
    customer_id: uuid.UUID
    at: datetime  # UTC, naive (as the database's timestamps)
    mode: str  # "deactivate" or "anonymise"

    @property
    def anonymise(self) -> bool:
        return self.mode == "anonymise"


def path(settings: Settings | None = None) -> Path:
    """The journal file (ERASURE_JOURNAL_DIR/journal.log)."""
    return (settings or get_settings()).erasure_journal_dir / FILE_NAME


@contextmanager
def replaying() -> Iterator[None]:
    """Erasures made inside this block are re-applications: they are not journalled again."""
    token = _replaying.set(True)
    try:
        yield
    finally:
        _replaying.reset(token)


def record(customer_id: uuid.UUID, *, anonymise: bool, settings: Settings | None = None) -> None:
    """Append one erasure (called by ``gdpr.erase`` before its transaction commits)."""
    if _replaying.get():
        return
    settings = settings or get_settings()
    entry = {
        "id": str(uuid.uuid4()),
        "customer_id": str(customer_id),
        "at": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds"),
        "mode": "anonymise" if anonymise else "deactivate",
    }
    sealed = encryption.encrypt(
        json.dumps(entry, sort_keys=True).encode(), encryption.keys(settings).recipients
    )
    append_line(path(settings), base64.b64encode(sealed).decode("ascii"))


def append_line(journal: Path, payload: str) -> None:
    """Append ``payload`` chained to the last line, under an exclusive lock, fsynced."""
    created = not journal.exists()
    try:
        encryption.private_dir(journal.parent)
        fd = os.open(journal, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except encryption.EncryptionError as exc:  # its folder could not be made
        raise JournalError(f"cannot open the erasure journal {journal}: {exc}") from None
    except OSError as exc:
        raise JournalError(f"cannot open the erasure journal {journal}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # other CLI runs and workers append to the same file
        previous = _last_line(fd)
        prev_hash = hashlib.sha256(previous).hexdigest() if previous else GENESIS
        line = f"{MAGIC} {prev_hash} {payload}\n".encode("ascii")
        if os.write(fd, line) != len(line):
            raise JournalError(f"short write to the erasure journal {journal}")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # the new directory entry must survive a crash too
        dfd = os.open(journal.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _last_line(fd: int) -> bytes:
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return b""
    chunk = min(size, 64 * 1024)
    os.lseek(fd, size - chunk, os.SEEK_SET)
    tail = os.read(fd, chunk)
    lines = tail.rstrip(b"\n").split(b"\n")
    return lines[-1]


def verify(journal: Path) -> list[str]:
    """Check the hash chain (no key needed); returns the payloads in order."""
    if not journal.exists():
        return []
    payloads: list[str] = []
    prev_hash = GENESIS
    with journal.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\n")
            parts = line.decode("ascii", "replace").split(" ")
            if len(parts) != 3 or parts[0] != MAGIC:
                raise JournalError(f"{journal}: line {number} is not a journal line")
            if parts[1] != prev_hash:
                raise JournalError(
                    f"{journal}: the hash chain breaks at line {number} "
                    "(a line was removed, reordered or altered)"
                )
            payloads.append(parts[2])
            prev_hash = hashlib.sha256(line).hexdigest()
    return payloads


def read(settings: Settings | None = None, identity: Path | None = None) -> list[Entry]:
    """Every entry, oldest first, after checking the chain (needs the age identity)."""
    settings = settings or get_settings()
    identity = identity or settings.backup_age_identity_file
    entries = []
    for payload in verify(path(settings)):
        data = json.loads(encryption.decrypt(base64.b64decode(payload), identity))
        entries.append(
            Entry(
                id=uuid.UUID(data["id"]),
                customer_id=uuid.UUID(data["customer_id"]),
                at=datetime.fromisoformat(data["at"]),
                mode=str(data["mode"]),
            )
        )
    return entries
