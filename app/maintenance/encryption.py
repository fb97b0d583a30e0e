"""age encryption of what leaves the database: logical exports, the erasure journal and
local cold storage (app/maintenance/cold_crypt.py).

Both are encrypted to *recipients* (public keys, ``BACKUP_AGE_RECIPIENTS_FILE``): the
processes that write them never hold the key that reads them. The *identity* (private
key, ``BACKUP_AGE_IDENTITY_FILE``) is needed only to restore. Outside production a key
pair is generated on first use (``.data/backup-keys/``) so a fresh checkout works; in
production a missing recipients file is an error, never a silent new key.

Everything written here is created 0600 inside 0700 folders.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from app.config import Settings, get_settings


class EncryptionError(RuntimeError):
    """age is missing, a key file is missing or unreadable, or age refused the data."""


@dataclass(frozen=True)
class Keys:
    recipients: Path
    identity: Path


def binary(name: str = "age") -> str:
    """Path of ``age`` / ``age-keygen`` (Debian package ``age``)."""
    found = shutil.which(name)
    if not found:
        raise EncryptionError(
            f"{name} is not installed (Debian package age; scripts/_bootstrap.sh installs it)"
        )
    return found


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700; an operator error names the folder."""
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.chmod(0o700)
    except OSError as exc:
        raise EncryptionError(f"cannot create the folder {path}: {exc.strerror}") from None
    return path


def keys(settings: Settings | None = None) -> Keys:
    """The configured key files; outside production a missing pair is generated."""
    settings = settings or get_settings()
    found = Keys(settings.backup_age_recipients_file, settings.backup_age_identity_file)
    if found.recipients.exists():
        return found
    if settings.is_production():
        raise EncryptionError(
            f"BACKUP_AGE_RECIPIENTS_FILE: {found.recipients} does not exist "
            "(create a key pair with age-keygen; keep the identity offline)"
        )
    folder = private_dir(found.recipients.parent)
    with (folder / ".keygen.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two first erasures at once make one key pair
        if found.recipients.exists():
            return found
        if found.identity.exists():
            _write_recipients(found.identity, found.recipients)
        else:
            generate(found.identity, found.recipients)
    return found


def generate(identity: Path, recipients: Path) -> None:
    """A new key pair: the identity 0600, its public key as the recipients file."""
    private_dir(identity.parent)
    done = subprocess.run(
        [binary("age-keygen"), "-o", str(identity)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise EncryptionError(f"age-keygen failed: {done.stderr.strip()[-300:]}")
    identity.chmod(0o600)
    _write_recipients(identity, recipients)


def _write_recipients(identity: Path, recipients: Path) -> None:
    done = subprocess.run(
        [binary("age-keygen"), "-y", str(identity)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise EncryptionError(f"age-keygen -y failed: {done.stderr.strip()[-300:]}")
    private_dir(recipients.parent)
    write_private(recipients, done.stdout.encode())


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new 0600 file, atomically (temporary name, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a leftover temporary file keeps its mode through O_TRUNC
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def encrypt(data: bytes, recipients: Path) -> bytes:
    """``data`` encrypted to every recipient of the file (binary age format)."""
    return _age(["-e", "-R", str(recipients)], data)


def decrypt(data: bytes, identity: Path) -> bytes:
    """Decrypt with the identity; authenticated: altered ciphertext is refused."""
    if not identity.exists():
        raise EncryptionError(f"BACKUP_AGE_IDENTITY_FILE: {identity} does not exist")
    return _age(["-d", "-i", str(identity)], data)


def encrypt_command(recipients: Path, output: Path) -> list[str]:
    """argv of an age process encrypting its stdin into ``output`` (streams, for pg_dump)."""
    return [binary(), "-e", "-R", str(recipients), "-o", str(output)]


def decrypt_file(source: Path, output: Path, identity: Path) -> None:
    """Decrypt ``source`` into a new 0600 ``output``."""
    if not identity.exists():
        raise EncryptionError(f"BACKUP_AGE_IDENTITY_FILE: {identity} does not exist")
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        done = subprocess.run(
            [binary(), "-d", "-i", str(identity), str(source)], stdout=out, stderr=subprocess.PIPE
        )
    if done.returncode != 0:
        output.unlink(missing_ok=True)
        raise EncryptionError(f"age could not decrypt {source.name}: {_tail(done.stderr)}")


def _age(args: list[str], data: bytes) -> bytes:
    done = subprocess.run([binary(), *args], input=data, capture_output=True)
    if done.returncode != 0:
        raise EncryptionError(f"age {args[0]} failed: {_tail(done.stderr)}")
    return done.stdout


def _tail(stderr: bytes) -> str:
    return stderr.decode("utf-8", "replace").strip()[-300:]
