"""age encryption of the objects a local cold-storage folder holds (issue 17 point 4).

Objects are encrypted to the backup recipients (``BACKUP_AGE_RECIPIENTS_FILE``,
app/maintenance/encryption.py): the retention job that writes them never needs the
identity. Reading is ``verify, then decrypt``: the ciphertext is copied into a private
temporary folder while it is hashed, the SHA-256 is compared with the one recorded at
write time (manifest / SHA256SUMS), and only that verified copy is handed to age. The
plaintext lives in an anonymous temporary file (or, for DuckDB, a 0700 folder removed
afterwards), never next to the store.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path
from typing import IO

from app.config import ConfigError, Settings, get_settings
from app.maintenance import encryption

AGE_HEADER = b"age-encryption.org/v1\n"
_CHUNK = 1 << 20


class IntegrityError(RuntimeError):
    """A stored object is not what was written (checksum, or not encrypted): not decrypted."""


def keys(settings: Settings | None = None) -> encryption.Keys:
    """The age key files; in production missing ones are a configuration error."""
    try:
        return encryption.keys(settings or get_settings())
    except encryption.EncryptionError as exc:
        raise ConfigError(f"cold storage encryption: {exc}") from None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seal(clear: Path, target: Path, recipients: Path) -> str:
    """Encrypt ``clear`` into a new 0600 ``target``, fsynced; the ciphertext's SHA-256."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        done = subprocess.run(
            [encryption.binary(), "-e", "-R", str(recipients), str(clear)],
            stdout=out,
            stderr=subprocess.PIPE,
        )
        out.flush()
        os.fsync(out.fileno())
    if done.returncode != 0:
        raise encryption.EncryptionError(f"age -e failed: {_tail(done.stderr)}")
    return sha256_file(target)


def open_verified(source: Path, expected: str | None, identity: Path, *, name: str) -> IO[bytes]:
    """The plaintext of ``source`` (an anonymous temporary file, at offset 0).

    ``expected``: the ciphertext's SHA-256 recorded at write time; a mismatch is refused
    before age sees the data. ``None`` (a manifest: nothing records its checksum) relies
    on age's authenticated encryption alone. ``name`` names the object in errors.
    """
    with tempfile.TemporaryDirectory(prefix="pn-cold-") as tmp:  # 0700
        copy = Path(tmp) / "object.age"
        digest = hashlib.sha256()
        fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            head = src.read(len(AGE_HEADER))
            if head != AGE_HEADER:
                raise IntegrityError(f"{name}: not age-encrypted (refused)")
            digest.update(head)
            dst.write(head)
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
        if expected is not None and digest.hexdigest() != expected:
            raise IntegrityError(f"{name}: checksum mismatch (not decrypted)")
        return decrypt_to_temp(copy, identity, name=name)


def decrypt_to_temp(source: Path, identity: Path, *, name: str) -> IO[bytes]:
    if not identity.exists():
        raise ConfigError(f"BACKUP_AGE_IDENTITY_FILE: {identity} does not exist")
    out = tempfile.TemporaryFile(prefix="pn-cold-")  # noqa: SIM115 - returned to the caller
    done = subprocess.run(
        [encryption.binary(), "-d", "-i", str(identity), str(source)],
        stdout=out,
        stderr=subprocess.PIPE,
    )
    if done.returncode != 0:
        out.close()
        raise IntegrityError(f"{name}: age could not decrypt it: {_tail(done.stderr)}")
    out.seek(0)
    return out


def _tail(stderr: bytes) -> str:
    return " ".join(stderr.decode("utf-8", "replace").split())[-300:]
