"""Cold storage target: a local folder or an object store URL, through fsspec.

``ColdStore.from_settings()`` opens ``COLD_STORAGE_URL`` (``s3://bucket/prefix``: s3fs,
every object written with server-side encryption ``COLD_STORAGE_S3_SSE``; an
S3-compatible store through ``COLD_STORAGE_S3_ENDPOINT_URL``) or, unset, the local folder
``COLD_STORAGE_DIR``. Locally every folder is made 0700 and every file 0600 (written
under a temporary name, fsynced and renamed), so nothing is ever world-readable; on S3
objects are private (no ACL is granted) and a PUT is atomic.

A local folder is also **encrypted at rest** with age (app/maintenance/cold_crypt.py):
every object is stored as age ciphertext to the backup recipients, except those written
with ``plain=True`` (SHA256SUMS: checksums of the ciphertexts, so ``sha256sum -c`` works
without the key). ``sha256``/``size`` describe the stored (encrypted) bytes; ``open`` and
``read_bytes`` verify the ciphertext's SHA-256 (given, or listed in the folder's
SHA256SUMS) before they decrypt, transparently. On S3 the bucket's server-side
encryption (``COLD_STORAGE_S3_SSE``) is used instead.

Paths handed to the methods are relative to the store's root ("audit_log/2024/01/...").
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec

from app.maintenance import cold_crypt
from app.maintenance.encryption import Keys

DIR_MODE = 0o700
FILE_MODE = 0o600
SUMS = "SHA256SUMS"  # per folder: "<sha256>  <name>" of the stored objects


@dataclass
class ColdStore:
    url: str  # root: a local path, file://..., s3://bucket/prefix, memory://...
    storage_options: dict[str, Any] = field(default_factory=dict)
    encrypt: bool = True  # local folders: age at rest (object stores: SSE, unaffected)

    def __post_init__(self) -> None:
        self.fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)
        self.encrypted = self.local and self.encrypt
        self._keys: Keys | None = None

    def keys(self) -> Keys:
        """age key files (read lazily: a store that is only listed needs none)."""
        if self._keys is None:
            self._keys = cold_crypt.keys()
        return self._keys

    @classmethod
    def from_settings(cls) -> ColdStore:
        from app.config import get_settings

        s = get_settings()
        if not s.cold_storage_url:
            return cls(str(Path(s.cold_storage_dir).resolve()))
        options: dict[str, Any] = {}
        if s.cold_storage_url.startswith("s3://"):
            if s.cold_storage_s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": s.cold_storage_s3_endpoint_url}
            if s.cold_storage_s3_sse:
                options["s3_additional_kwargs"] = {"ServerSideEncryption": s.cold_storage_s3_sse}
        return cls(s.cold_storage_url, options)

    def path(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def display(self, relative: str) -> str:
        """Where an object is, for operators (no credentials are part of it)."""
        protocol = _protocols(self.fs)[0]
        return self.path(relative) if self.local else f"{protocol}://{self.path(relative)}"

    def _mkdirs(self, relative_dir: str) -> None:
        if not self.local:
            return
        target = Path(self.path(relative_dir))
        missing = []
        while not target.exists():
            missing.append(target)
            target = target.parent
        for folder in reversed(missing):
            folder.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(folder, DIR_MODE)

    @contextmanager
    def writer(self, relative: str, *, plain: bool = False) -> Iterator[IO[bytes]]:
        """A binary file to write; in place only once the block ends without error
        (encrypted then, unless ``plain`` or not a local folder)."""
        if self.encrypted and not plain:
            with tempfile.TemporaryDirectory(prefix="pn-cold-") as scratch:  # 0700
                clear = Path(scratch) / "clear"
                fd = os.open(clear, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                with os.fdopen(fd, "wb") as fh:
                    yield fh
                self.put_file(relative, clear)
            return
        self._mkdirs(posixpath.dirname(relative))
        if self.local:
            final = Path(self.path(relative))
            tmp = final.with_name(final.name + ".partial")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                with os.fdopen(fd, "wb") as fh:
                    yield fh
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, FILE_MODE)
                os.replace(tmp, final)
            finally:
                if tmp.exists():
                    tmp.unlink()
            return
        with self.fs.open(self.path(relative), "wb") as fh:
            yield fh

    def put_file(self, relative: str, local: Path) -> str:
        """Store the local file ``local``; returns the SHA-256 of the stored object
        (the ciphertext in an encrypted folder), to record and verify against."""
        if not self.encrypted:
            digest = hashlib.sha256()
            with local.open("rb") as src, self.writer(relative) as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    dst.write(chunk)
            return digest.hexdigest()
        self._mkdirs(posixpath.dirname(relative))
        final = Path(self.path(relative))
        tmp = final.with_name(final.name + ".partial")
        try:
            sha = cold_crypt.seal(local, tmp, self.keys().recipients)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return sha

    def write_bytes(self, relative: str, data: bytes, *, plain: bool = False) -> None:
        with self.writer(relative, plain=plain) as fh:
            fh.write(data)

    def read_bytes(self, relative: str, *, plain: bool = False) -> bytes:
        if self.encrypted and not plain:
            with self.open(relative) as fh:
                return fh.read()
        data: bytes = self.fs.cat_file(self.path(relative))
        return data

    def open(self, relative: str, sha256: str | None = None) -> IO[bytes]:
        """The object's content. In an encrypted folder the ciphertext is first checked
        against ``sha256`` (default: its line in the folder's SHA256SUMS, if any) and
        refused (``cold_crypt.IntegrityError``) when it differs; then decrypted."""
        if not self.encrypted:
            handle: IO[bytes] = self.fs.open(self.path(relative), "rb")
            return handle
        expected = sha256 or self.listed_sha256(relative)
        return cold_crypt.open_verified(
            Path(self.path(relative)), expected, self.keys().identity, name=self.display(relative)
        )

    def listed_sha256(self, relative: str) -> str | None:
        """The object's SHA-256 in its folder's SHA256SUMS (None: not listed)."""
        folder, name = posixpath.split(relative)
        sums = posixpath.join(folder, SUMS)
        if name == SUMS or not self.exists(sums):
            return None
        for line in self.read_bytes(sums, plain=True).decode().splitlines():
            digest, _, listed = line.partition("  ")
            if listed == name:
                return digest
        return None

    @contextmanager
    def readable(self, items: Sequence[tuple[str, str | None]]) -> Iterator[tuple[Any, list[str]]]:
        """(pyarrow filesystem, paths) for Arrow/DuckDB to read objects ``(relative,
        sha256)`` directly. An encrypted folder's objects are verified and decrypted into a
        private (0700) temporary folder, removed when the block ends."""
        import pyarrow.fs as pa_fs

        if not self.encrypted:
            handler = pa_fs.FSSpecHandler(self.fs)
            yield pa_fs.PyFileSystem(handler), [self.path(r) for r, _ in items]
            return
        with tempfile.TemporaryDirectory(prefix="pn-cold-query-") as tmp:
            paths = []
            for i, (relative, sha) in enumerate(items):
                target = Path(tmp) / f"{i:06d}{posixpath.splitext(relative)[1]}"
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                with self.open(relative, sha) as src, os.fdopen(fd, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                paths.append(str(target))
            yield pa_fs.LocalFileSystem(), paths

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def remove(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.rm(self.path(relative))

    def size(self, relative: str) -> int:
        return int(self.fs.size(self.path(relative)))

    def sha256(self, relative: str) -> str:
        """SHA-256 of the stored object (its ciphertext if encrypted), read back."""
        digest = hashlib.sha256()
        with self.fs.open(self.path(relative), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def glob(self, pattern: str) -> list[str]:
        """Relative paths matching ``pattern`` (relative too), sorted."""
        self.fs.invalidate_cache()
        prefix = self.root + "/"
        found = []
        for name in self.fs.glob(self.path(pattern)):
            name = str(name)
            found.append(name[len(prefix) :] if name.startswith(prefix) else name)
        return sorted(found)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
