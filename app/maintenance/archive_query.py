"""``archive query``: read-only SQL (DuckDB) over the cold storage's Parquet files.

Each table with a set in cold storage is a view of the same name over every file its
manifests name (through fsspec: a local folder or an object store). One SELECT (or
WITH ... SELECT) statement only; once the views exist, DuckDB's external access is
switched off and its configuration locked, so a query can read nothing else (no
``read_csv('/etc/...')``, no ``ATTACH``, no ``COPY ... TO``). Errors are one line.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow.dataset as pa_ds
import pyarrow.fs as pa_fs

from app.maintenance import cold_storage
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository import archive as repository


class QueryError(ValueError):
    """The query was refused or failed (the message is one line, for the auditor)."""


def _one_select(sql: str) -> None:
    try:
        kinds = repository.statement_kinds(sql)
    except duckdb.Error as exc:
        raise QueryError(_line(exc)) from None
    if len(kinds) != 1:
        raise QueryError(f"exactly one statement, please (got {len(kinds)})")
    if kinds[0] != "SELECT":
        raise QueryError(f"read-only: only SELECT is allowed (got {kinds[0]})")


def _line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def tables(store: ColdStore) -> dict[str, list[str]]:
    """Table -> the store paths of every file its manifests name."""
    found: dict[str, list[str]] = {}
    for unit, manifest in cold_storage.manifests(store):
        for entry in manifest["files"]:
            found.setdefault(unit.table, []).append(store.path(f"{unit.prefix}/{entry['file']}"))
    return found


def run(store: ColdStore, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of one read-only query over the cold tables."""
    _one_select(sql)
    filesystem = pa_fs.PyFileSystem(pa_fs.FSSpecHandler(store.fs))
    datasets = {
        table: pa_ds.dataset(paths, filesystem=filesystem, format="parquet")
        for table, paths in tables(store).items()
    }
    try:
        return repository.run_readonly(datasets, sql)
    except duckdb.Error as exc:
        raise QueryError(_line(exc)) from None
