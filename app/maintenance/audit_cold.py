"""The audit chain across cold storage: a retired audit month still verifies.

Retention exports an audit_log month to Parquet with every column, ``statement_id`` and
``row_hash`` included, and drops the partition; the month's seals (``audit_seals``, a
few rows per statement) stay in the database. Each day's chain is self-contained
(migration 0010: the first seal of a day links to a fixed genesis, never to the day
before), so dropping old days breaks no link of the days kept. What a cold day's seals
cover is checked here against its cold files: per statement, the row count and
sha256 of the row hashes in id order must equal the sealed digest, and every sealed
statement of the month must be in the set (nothing dropped, nothing added).

Retention runs this check before it asks the database to drop the month
(app/maintenance/retention_units.py); ``audit verify --cold`` runs it for every retired
month in its range (app/maintenance/audit_verify.py). The rows' content is checked
against their hashes while they are hot (``audit verify`` before retirement); a GDPR
rewrite of a cold file changes only JSON content, never ``row_hash``.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from app.maintenance import cold_storage
from app.maintenance.cold_storage import Unit
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository.audit_chain import Seal, Statement
from app.months import Month

COLUMNS = ["id", "statement_id", "row_hash", "timestamp"]


def _hash_bytes(value: str) -> bytes:
    """bytea as PostgreSQL's COPY writes it (``\\x`` and hex)."""
    return bytes.fromhex(value[2:] if value.startswith("\\x") else value)


def statements(table: pa.Table) -> dict[int, Statement]:
    """Per sealed statement of an audit table (Arrow, ``COLUMNS``): rows, digest, day."""
    table = table.select(COLUMNS).sort_by([("statement_id", "ascending"), ("id", "ascending")])
    hashes: dict[int, list[bytes]] = defaultdict(list)
    days: dict[int, date] = {}
    ids = table.column("statement_id").to_pylist()
    row_hashes = table.column("row_hash").to_pylist()
    stamps = table.column("timestamp").to_pylist()
    for statement_id, row_hash, stamp in zip(ids, row_hashes, stamps, strict=True):
        if statement_id is None or row_hash is None:
            continue  # a legacy row (before migration 0010): no seal covers it
        hashes[statement_id].append(_hash_bytes(row_hash))
        if statement_id not in days and isinstance(stamp, datetime):
            days[statement_id] = stamp.date()
    return {
        sid: Statement(sid, len(h), hashlib.sha256(b"".join(h)).digest(), days[sid])
        for sid, h in hashes.items()
    }


def read_month(store: ColdStore, month: Month) -> dict[int, Statement] | None:
    """The statements of the cold audit set of ``month`` (files verified first); None when
    the store holds no such set."""
    unit = Unit("audit_log", month)
    manifest = cold_storage.read_manifest(store, unit)
    if manifest is None:
        return None
    tables = []
    for entry in manifest["files"]:
        cold_storage.verify_file(store, unit, entry)
        with store.open(f"{unit.prefix}/{entry['file']}") as fh:
            tables.append(pq.read_table(fh, columns=COLUMNS))
    if not tables:
        return {}
    return statements(pa.concat_tables(tables))


def problems(seals: list[Seal], found: dict[int, Statement]) -> list[str]:
    """What does not match between a month's seals and the statements of its cold set."""
    out = []
    left = dict(found)
    for seal in seals:
        statement = left.pop(seal.statement_id, None)
        where = f"{seal.day.isoformat()} seal {seal.seq} (statement {seal.statement_id})"
        if statement is None:
            out.append(f"{where}: its {seal.row_count} row(s) are not in cold storage")
        elif statement.rows != seal.row_count:
            out.append(f"{where}: {seal.row_count} row(s) sealed, {statement.rows} in cold storage")
        elif statement.digest != seal.digest:
            out.append(f"{where}: the cold rows' hashes do not match the seal")
    for statement in left.values():
        out.append(
            f"{statement.day.isoformat()}: {statement.rows} cold row(s) of statement "
            f"{statement.statement_id} are not covered by any seal"
        )
    return out
