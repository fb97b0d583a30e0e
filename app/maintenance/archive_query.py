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

from app.maintenance import cold_crypt, cold_storage
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


def tables(store: ColdStore) -> dict[str, list[tuple[str, str]]]:
    """Table -> (relative path, SHA-256) of every file its manifests name."""
    found: dict[str, list[tuple[str, str]]] = {}
    for unit, manifest in cold_storage.manifests(store):
        for entry in manifest["files"]:
            relative = f"{unit.prefix}/{entry['file']}"
            found.setdefault(unit.table, []).append((relative, entry["sha256"]))
    return found


def run(store: ColdStore, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of one read-only query over the cold tables. An encrypted
    folder's files are verified and decrypted into a private temporary folder first,
    removed once the query has run."""
    _one_select(sql)
    files = tables(store)
    everything = [item for items in files.values() for item in items]
    try:
        with store.readable(everything) as (filesystem, paths):
            at = dict(zip(everything, paths, strict=True))
            datasets = {
                table: pa_ds.dataset(
                    [at[i] for i in items], filesystem=filesystem, format="parquet"
                )
                for table, items in files.items()
            }
            return repository.run_readonly(datasets, sql)
    except duckdb.Error as exc:
        raise QueryError(_line(exc)) from None
    except cold_crypt.IntegrityError as exc:
        raise QueryError(str(exc)) from None
