"""Cold storage format: Parquet file sets, one per table and month, with a manifest.

Layout under the store's root (app/maintenance/cold_store.py, a folder or an S3 URL)::

    <table>/<YYYY>/<MM>/part-<id>.parquet   one or more files (pyarrow, zstd)
    <table>/<YYYY>/<MM>/manifest.json       what the set holds (below)
    <table>/<YYYY>/<MM>/SHA256SUMS          ``sha256sum -c`` of the files (as stored)

In a local folder the Parquet files and the manifest are age ciphertext (cold_store.py)
and the recorded SHA-256 is the ciphertext's: it is checked before anything is decrypted.

The manifest records the table, the month, each file's rows, bytes and SHA-256, the
totals, the Arrow schema, the retention class (``audit``: 10 years, ``standard``: 7)
and the expiry date (the month's end plus those years), and which column names the
customer. A file is written to a local temporary file, hashed, copied into the store
and then **verified by re-reading the stored object** (its SHA-256 and the row count in
its Parquet footer) before the manifest names it; the manifest is written after the
files and SHA256SUMS, so a set without a manifest, or a file the manifest does not
name, is debris of an interrupted run (the next run writes the set again).
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from app.maintenance.cold_store import SUMS, ColdStore
from app.months import Month

FORMAT = "premium-notify-cold/2"
MANIFEST = "manifest.json"
AUDIT_TABLES = frozenset({"audit_log"})
# Column naming the customer, per table (delivery_status: through its notification).
CUSTOMER_COLUMN = {
    "daily_balance_checks": "customer_id",
    "monthly_qualifications": "customer_id",
    "notifications": "customer_id",
}


class ExportError(RuntimeError):
    """A written object does not read back as written, or a set is inconsistent."""


@dataclass(frozen=True)
class Unit:
    """One file set: a table's month."""

    table: str
    month: Month

    @property
    def prefix(self) -> str:
        return f"{self.table}/{self.month.year:04d}/{self.month.month:02d}"

    @property
    def manifest(self) -> str:
        return f"{self.prefix}/{MANIFEST}"


def retention_class(table: str) -> str:
    return "audit" if table in AUDIT_TABLES else "standard"


def expires_on(month: Month, years: int) -> date:
    """The month's end (the first of the next month) ``years`` later."""
    end = month.next_first
    return end.replace(year=end.year + years)  # the 1st of a month exists every year


def arrow_type(data_type: str, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type a PostgreSQL column is stored as (uuid and jsonb: their text)."""
    if data_type == "boolean":
        return pa.bool_()
    if data_type == "integer":
        return pa.int32()
    if data_type == "bigint":
        return pa.int64()
    if data_type == "numeric":
        return pa.decimal128(precision or 38, scale or 0)
    if data_type == "date":
        return pa.date32()
    if data_type.startswith("timestamp"):
        return pa.timestamp("us")
    return pa.string()


def schema_of(columns: list[tuple[str, str, int | None, int | None]]) -> pa.Schema:
    return pa.schema([(name, arrow_type(t, p, s)) for name, t, p, s in columns])


def _csv_options(schema: pa.Schema) -> dict[str, Any]:
    return {
        "parse_options": pa_csv.ParseOptions(newlines_in_values=True),
        "convert_options": pa_csv.ConvertOptions(
            column_types={f.name: f.type for f in schema},
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # "" is an empty string, an empty field NULL
            true_values=["t"],
            false_values=["f"],
        ),
    }


def read_csv(csv_path: Path, schema: pa.Schema) -> pa.Table:
    """PostgreSQL's COPY CSV (with header) as an Arrow table of ``schema``."""
    return pa_csv.read_csv(csv_path, **_csv_options(schema)).select(schema.names).cast(schema)


def csv_to_parquet(csv_path: Path, parquet_path: Path, schema: pa.Schema) -> int:
    """Convert PostgreSQL's COPY CSV (with header) to Parquet, streaming; returns rows."""
    rows = 0
    reader = pa_csv.open_csv(csv_path, **_csv_options(schema))
    with pq.ParquetWriter(parquet_path, schema, compression="zstd") as writer:
        for batch in reader:
            table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)
            writer.write_table(table)
            rows += table.num_rows
    return rows


def table_to_parquet(table: pa.Table, parquet_path: Path) -> int:
    pq.write_table(table, parquet_path, compression="zstd")
    return int(table.num_rows)


def store_file(
    store: ColdStore, unit: Unit, write: Callable[[Path], int], *, run_id: str
) -> dict[str, Any]:
    """Write one Parquet file of ``unit`` (``write`` fills a local path, returns its rows),
    copy it into the store and verify the stored object; returns its manifest entry."""
    with tempfile.TemporaryDirectory(prefix="pn-cold-") as tmp:
        local = Path(tmp) / "part.parquet"
        rows = write(local)
        name = f"part-{uuid.uuid4().hex[:12]}.parquet"
        relative = f"{unit.prefix}/{name}"
        sha = store.put_file(relative, local)  # of the stored bytes (ciphertext if local)
    entry = {
        "file": name,
        "rows": rows,
        "bytes": store.size(relative),
        "sha256": sha,
        "run_id": run_id,
        "written_at": _now(),
    }
    verify_file(store, unit, entry)
    return entry


def verify_file(store: ColdStore, unit: Unit, entry: dict[str, Any]) -> None:
    """Re-read the stored object: its SHA-256 and the rows in its Parquet footer."""
    relative = f"{unit.prefix}/{entry['file']}"
    if not store.exists(relative):
        raise ExportError(f"{store.display(relative)}: missing")
    if store.sha256(relative) != entry["sha256"]:
        raise ExportError(f"{store.display(relative)}: checksum mismatch")
    with store.open(relative, entry["sha256"]) as fh:  # verified again, then decrypted
        rows = pq.ParquetFile(fh).metadata.num_rows
    if rows != entry["rows"]:
        raise ExportError(f"{store.display(relative)}: {rows} rows, expected {entry['rows']}")


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def read_manifest(store: ColdStore, unit: Unit) -> dict[str, Any] | None:
    if not store.exists(unit.manifest):
        return None
    value: dict[str, Any] = json.loads(store.read_bytes(unit.manifest))
    return value


def write_manifest(
    store: ColdStore,
    unit: Unit,
    files: list[dict[str, Any]],
    schema: pa.Schema,
    *,
    years: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SHA256SUMS, then manifest.json (last: it is what makes the set complete)."""
    manifest = {
        "format": FORMAT,
        "table": unit.table,
        "month": str(unit.month),
        "retention_class": retention_class(unit.table),
        "keep_years": years,
        "expires_on": expires_on(unit.month, years).isoformat(),
        "rows": sum(f["rows"] for f in files),
        "bytes": sum(f["bytes"] for f in files),
        "files": files,
        "schema": [{"name": f.name, "type": str(f.type)} for f in schema],
        "customer_column": CUSTOMER_COLUMN.get(unit.table),
        "updated_at": _now(),
        **(extra or {}),
    }
    sums = "".join(f"{f['sha256']}  {f['file']}\n" for f in files)
    store.write_bytes(f"{unit.prefix}/{SUMS}", sums.encode(), plain=True)  # checksums only
    store.write_bytes(unit.manifest, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def manifests(store: ColdStore) -> list[tuple[Unit, dict[str, Any]]]:
    """Every complete file set in the store (those with a manifest), oldest first."""
    found = []
    for relative in store.glob(f"*/*/*/{MANIFEST}"):
        table, year, month, _ = relative.split("/")
        unit = Unit(table, Month(int(year), int(month)))
        manifest = read_manifest(store, unit)
        if manifest is not None:
            found.append((unit, manifest))
    return sorted(found, key=lambda u: (u[0].month.year, u[0].month.month, u[0].table))


def read_set(store: ColdStore, unit: Unit, manifest: dict[str, Any]) -> pa.Table:
    """All rows of a set (every file the manifest names), each file verified first."""
    tables = []
    for entry in manifest["files"]:
        with store.open(f"{unit.prefix}/{entry['file']}", entry["sha256"]) as fh:
            tables.append(pq.read_table(fh))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")


def remove_set(store: ColdStore, unit: Unit, manifest: dict[str, Any]) -> list[str]:
    """Delete the set's files, SHA256SUMS and manifest (manifest last); returns them."""
    removed = []
    for entry in manifest["files"]:
        store.remove(f"{unit.prefix}/{entry['file']}")
        removed.append(entry["file"])
    store.remove(f"{unit.prefix}/{SUMS}")
    store.remove(unit.manifest)
    return [*removed, SUMS, MANIFEST]


def verify_set(store: ColdStore, unit: Unit) -> list[str]:
    """Problems re-checking a set against its manifest (empty: fine)."""
    manifest = read_manifest(store, unit)
    if manifest is None:
        return [f"{unit.prefix}: no {MANIFEST} (incomplete)"]
    problems = []
    for entry in manifest["files"]:
        try:
            verify_file(store, unit, entry)
        except ExportError as exc:
            problems.append(str(exc))
    return problems
