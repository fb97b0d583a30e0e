"""Export of archived rows to cold storage: CSV.gz files, a JSON manifest, SHA-256 sums.

One export covers the rows archived in a window ``(since, until]`` of ``archived_at``
(the retention run's watermark), so each archived row is exported exactly once by the
run that finished after archiving it; a run that failed before exporting leaves the
watermark where it was and the next run exports those rows too.

Layout: ``<COLD_STORAGE_DIR>/YYYY/MM/DD/retention-<run id>/`` holding one
``<table>.csv.gz`` per archive table with rows, ``manifest.json`` (tables, row counts,
columns, byte sizes, SHA-256 of each file, the window) and ``SHA256SUMS`` (checkable
with ``sha256sum -c``). Files are written under a temporary name, verified (re-read,
row count and checksum) and renamed; the manifest is written last, so a folder without
a manifest is an incomplete export and can be deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from app.maintenance.repository import cold_storage as repository
from app.models import ARCHIVE_TABLES

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
FORMAT = "premium-notify-cold-storage/1"


@dataclass(frozen=True)
class ExportedFile:
    table: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: list[str]


class ExportError(RuntimeError):
    """A written file does not read back as written."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _count_csv_rows(path: Path) -> int:
    import csv

    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        return sum(1 for _ in csv.reader(fh)) - 1  # minus the header


def export_window(
    engine: Engine,
    folder: Path,
    since: datetime | None,
    until: datetime,
    *,
    run_id: str,
) -> list[ExportedFile]:
    """Write every archive table's rows archived in ``(since, until]``; returns the files.

    COPY streams straight from the server into gzip (no rows held in memory).
    """
    folder.mkdir(parents=True, exist_ok=True)
    exported: list[ExportedFile] = []
    raw = engine.raw_connection()
    try:
        for name in sorted(ARCHIVE_TABLES):
            columns = [c.name for c in ARCHIVE_TABLES[name].columns]
            expected = repository.count_archived(raw, name, since, until)
            if expected == 0:
                continue
            target = folder / f"{name}.csv.gz"
            tmp = target.with_suffix(".gz.partial")
            with gzip.open(tmp, "wb", compresslevel=6) as gz:
                repository.copy_archived_csv(raw, name, columns, since, until, gz)
            rows = _count_csv_rows(tmp)
            if rows != expected:
                raise ExportError(f"{name}: wrote {rows} rows, expected {expected}")
            os.replace(tmp, target)
            exported.append(
                ExportedFile(
                    table=name,
                    file=target.name,
                    rows=rows,
                    bytes=target.stat().st_size,
                    sha256=_sha256(target),
                    columns=columns,
                )
            )
        raw.rollback()  # read-only; end the transaction COPY opened
    finally:
        raw.close()
    return exported


def write_manifest(
    folder: Path,
    files: list[ExportedFile],
    *,
    run_id: str,
    since: datetime | None,
    until: datetime,
    extra: dict[str, Any] | None = None,
) -> Path:
    """manifest.json and SHA256SUMS, each written atomically (temp file + rename)."""
    manifest = {
        "format": FORMAT,
        "run_id": run_id,
        "archived_after": since.isoformat() if since else None,
        "archived_through": until.isoformat(),
        "created_at_utc": datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "files": [asdict(f) for f in files],
        **(extra or {}),
    }
    sums = "".join(f"{f.sha256}  {f.file}\n" for f in files)
    _atomic_write(folder / SUMS, sums)
    path = folder / MANIFEST
    _atomic_write(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(content, encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def verify(folder: Path) -> list[str]:
    """Problems found re-checking an export folder against its manifest (empty: fine)."""
    path = folder / MANIFEST
    if not path.exists():
        return [f"{folder}: no {MANIFEST} (incomplete export)"]
    manifest = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for entry in manifest["files"]:
        file = folder / entry["file"]
        if not file.exists():
            problems.append(f"{entry['file']}: missing")
        elif _sha256(file) != entry["sha256"]:
            problems.append(f"{entry['file']}: checksum mismatch")
        elif _count_csv_rows(file) != entry["rows"]:
            problems.append(f"{entry['file']}: row count mismatch")
    return problems
