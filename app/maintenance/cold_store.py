"""Cold storage target: a local folder or an object store URL, through fsspec.

``ColdStore.from_settings()`` opens ``COLD_STORAGE_URL`` (``s3://bucket/prefix``: s3fs,
every object written with server-side encryption ``COLD_STORAGE_S3_SSE``; an
S3-compatible store through ``COLD_STORAGE_S3_ENDPOINT_URL``) or, unset, the local folder
``COLD_STORAGE_DIR``. Locally every folder is made 0700 and every file 0600 (written
under a temporary name, fsynced and renamed), so nothing is ever world-readable; on S3
objects are private (no ACL is granted) and a PUT is atomic.

Paths handed to the methods are relative to the store's root ("audit_log/2024/01/...").
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import fsspec

DIR_MODE = 0o700
FILE_MODE = 0o600


@dataclass
class ColdStore:
    url: str  # root: a local path, file://..., s3://bucket/prefix, memory://...
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        self.root = root.rstrip("/")
        self.local = "file" in _protocols(self.fs)

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
    def writer(self, relative: str) -> Iterator[IO[bytes]]:
        """A binary file to write; in place only once the block ends without error."""
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

    def write_bytes(self, relative: str, data: bytes) -> None:
        with self.writer(relative) as fh:
            fh.write(data)

    def read_bytes(self, relative: str) -> bytes:
        data: bytes = self.fs.cat_file(self.path(relative))
        return data

    def open(self, relative: str) -> IO[bytes]:
        handle: IO[bytes] = self.fs.open(self.path(relative), "rb")
        return handle

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.path(relative)))

    def remove(self, relative: str) -> None:
        if self.exists(relative):
            self.fs.rm(self.path(relative))

    def size(self, relative: str) -> int:
        return int(self.fs.size(self.path(relative)))

    def sha256(self, relative: str) -> str:
        """SHA-256 of the stored object, read back from the store."""
        digest = hashlib.sha256()
        with self.open(relative) as fh:
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
