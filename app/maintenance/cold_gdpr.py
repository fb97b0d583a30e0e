"""GDPR in cold storage: a customer's cold rows (access) and their anonymisation (erasure).

Access reads the sets through their manifests (each file verified first) and keeps the
customer's rows: checks, qualifications and notifications by ``customer_id``, delivery
rows by the customer's notification ids (hot, archived or cold), audit entries whose
``entity_id`` is one of the customer's ids or whose JSON names the customer's id.

Erasure rewrites every file that holds a trace of the customer: in the customer's cold
notifications the phone number and message body become the placeholders, and in every
text column of the other sets (audit JSON included) each occurrence of the customer's
names, email or phone becomes ``[erased]``. A file is rewritten as a new file (verified
by re-reading), then a new manifest names it, then the old file is removed: a crash
leaves either the old set or the new one, never a set without its data.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import scalar as arrow_scalar  # (a value, not SQL: the SQL guard reads ".scalar(")

from app.maintenance import cold_storage
from app.maintenance.cold_storage import Unit
from app.maintenance.cold_store import ColdStore

JSON_COLUMNS = frozenset({"old_values", "new_values", "details", "event_data"})
# Not free text: ids (uuids as text) and the audit rows' sealed hashes (bytea as hex). A
# short name made of hex letters ("Abe", "Dee") would otherwise match inside them and
# corrupt keys and the hashes the audit seals cover (app/maintenance/audit_cold.py).
NOT_TEXT = frozenset({"id", "row_hash"})


def _free_text(field: pa.Field) -> bool:
    return (
        pa.types.is_string(field.type)
        and field.name not in NOT_TEXT
        and not field.name.endswith("_id")
    )


@dataclass(frozen=True)
class Placeholders:
    phone: str
    body: str
    text: str


def _read(store: ColdStore, unit: Unit, entry: dict[str, Any]) -> pa.Table:
    """The file's rows; its SHA-256 is checked before it is decrypted, then its rows."""
    relative = f"{unit.prefix}/{entry['file']}"
    if not store.exists(relative):
        raise cold_storage.ExportError(f"{store.display(relative)}: missing")
    with store.open(relative, entry["sha256"]) as fh:
        table = pq.read_table(fh)
    if table.num_rows != entry["rows"]:
        raise cold_storage.ExportError(f"{store.display(relative)}: row count mismatch")
    return table


def _files(store: ColdStore, tables: set[str]) -> list[tuple[Unit, dict[str, Any], dict[str, Any]]]:
    return [
        (unit, manifest, entry)
        for unit, manifest in cold_storage.manifests(store)
        if unit.table in tables
        for entry in manifest["files"]
    ]


def _mentions(table: pa.Table, needle: str) -> pa.ChunkedArray:
    """Rows whose string columns contain ``needle`` (JSON kept as text)."""
    hit = pa.chunked_array([pa.array([False] * table.num_rows, pa.bool_())])
    for field in table.schema:
        if pa.types.is_string(field.type):
            found = pc.fill_null(pc.match_substring(table.column(field.name), needle), False)
            hit = pc.or_(hit, found)
    return hit


def customer_rows(
    store: ColdStore, cid: uuid.UUID, notification_ids: set[str], entity_ids: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The customer's cold rows, keyed ``<table>_cold`` (rows as plain dicts)."""
    out: dict[str, list[dict[str, Any]]] = {}
    wanted = str(cid)
    by_customer = {"daily_balance_checks", "monthly_qualifications", "notifications"}
    # First the tables naming the customer, so that their ids reach delivery and audit.
    for unit, _, entry in _files(store, by_customer):
        table = _read(store, unit, entry)
        rows = table.filter(pc.equal(table.column("customer_id"), wanted)).to_pylist()
        out.setdefault(f"{unit.table}_cold", []).extend(rows)
        entity_ids |= {r["id"] for r in rows}
        if unit.table == "notifications":
            notification_ids |= {r["id"] for r in rows}
    for unit, _, entry in _files(store, {"delivery_status"}):
        table = _read(store, unit, entry)
        nids = pa.array(sorted(notification_ids), pa.string())
        keep = pc.is_in(table.column("notification_id"), value_set=nids)
        out.setdefault("delivery_status_cold", []).extend(table.filter(keep).to_pylist())
    ids = pa.array(sorted(entity_ids | {wanted}), pa.string())
    for unit, _, entry in _files(store, {"audit_log"}):
        table = _read(store, unit, entry)
        keep = pc.or_(
            pc.fill_null(pc.is_in(table.column("entity_id"), value_set=ids), False),
            _mentions(table, wanted),
        )
        out.setdefault("audit_log_cold", []).extend(table.filter(keep).to_pylist())
    return out


def notification_sids(store: ColdStore, cid: uuid.UUID) -> list[str]:
    """Carrier message SIDs of the customer's cold notifications."""
    sids = []
    for unit, _, entry in _files(store, {"notifications"}):
        table = _read(store, unit, entry)
        mine = table.filter(pc.equal(table.column("customer_id"), str(cid)))
        sids += [s for s in mine.column("carrier_reference_id").to_pylist() if s]
    return sids


def _scrub_json(value: Any, pattern: re.Pattern[str], placeholder: str) -> Any:
    if isinstance(value, str):
        return pattern.sub(placeholder, value)
    if isinstance(value, list):
        return [_scrub_json(v, pattern, placeholder) for v in value]
    if isinstance(value, dict):
        return {
            _scrub_json(k, pattern, placeholder): _scrub_json(v, pattern, placeholder)
            for k, v in value.items()
        }
    return value


def _scrub_column(
    name: str, values: list[str | None], pattern: re.Pattern[str], placeholder: str
) -> tuple[list[str | None], int]:
    changed, out = 0, []
    for value in values:
        new = value
        if value is not None and pattern.search(value):
            if name in JSON_COLUMNS:
                new = json.dumps(
                    _scrub_json(json.loads(value), pattern, placeholder), ensure_ascii=False
                )
                new = pattern.sub(placeholder, new)  # a value split across JSON escapes
            else:
                new = pattern.sub(placeholder, value)
        changed += new != value
        out.append(new)
    return out, changed


def _anonymised(
    table: pa.Table, unit: Unit, cid: str, pattern: re.Pattern[str], marks: Placeholders
) -> tuple[pa.Table, int]:
    """The table with the customer's traces replaced, and how many rows changed."""
    changed_rows = pc.fill_null(_mentions_any(table, pattern), False)
    if unit.table == "notifications":
        mine = pc.equal(table.column("customer_id"), cid)
        changed_rows = pc.or_(changed_rows, mine)
        for column, mark in (("phone_number", marks.phone), ("sms_content", marks.body)):
            index = table.schema.get_field_index(column)
            table = table.set_column(
                index, column, pc.if_else(mine, arrow_scalar(mark), table.column(column))
            )
    for field in table.schema:
        if not _free_text(field):
            continue
        values, _ = _scrub_column(
            field.name, table.column(field.name).to_pylist(), pattern, marks.text
        )
        index = table.schema.get_field_index(field.name)
        table = table.set_column(index, field, pa.array(values, pa.string()))
    return table, int(pc.sum(changed_rows).as_py() or 0)


def _mentions_any(table: pa.Table, pattern: re.Pattern[str]) -> pa.ChunkedArray:
    hit = pa.chunked_array([pa.array([False] * table.num_rows, pa.bool_())])
    for field in table.schema:
        if _free_text(field):
            found = pc.match_substring_regex(
                table.column(field.name), pattern.pattern, ignore_case=True
            )
            hit = pc.or_(hit, pc.fill_null(found, False))
    return hit


def _writer(table: pa.Table) -> Callable[[Path], int]:
    return lambda path: cold_storage.table_to_parquet(table, path)


def anonymise(
    store: ColdStore,
    cid: uuid.UUID,
    values: list[str],
    marks: Placeholders,
    *,
    run_id: str,
    on_rewrite: Callable[[Unit, str, str], None] | None = None,
) -> dict[str, int]:
    """Rewrite every cold file holding a trace of the customer; rows changed per table."""
    counts: dict[str, int] = {}
    if not values:
        return counts
    pattern = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)
    for unit, manifest in cold_storage.manifests(store):
        files = list(manifest["files"])
        for i, entry in enumerate(files):
            table = _read(store, unit, entry)
            new, changed = _anonymised(table, unit, str(cid), pattern, marks)
            if not changed:
                continue
            written = cold_storage.store_file(store, unit, _writer(new), run_id=run_id)
            files[i] = {**written, "rewritten_from": entry["sha256"], "reason": "gdpr-erasure"}
            cold_storage.write_manifest(
                store, unit, files, new.schema, years=int(manifest["keep_years"])
            )
            store.remove(f"{unit.prefix}/{entry['file']}")
            if on_rewrite:
                on_rewrite(unit, entry["file"], written["file"])
            counts[f"{unit.table}_cold"] = counts.get(f"{unit.table}_cold", 0) + changed
    return counts
