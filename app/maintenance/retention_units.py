"""The units of a retention run: one table-month or one partition, each in its own
transaction(s), each audited. The run's order and bookkeeping: app/maintenance/retention.py.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.exc import DBAPIError

from app.db.audit import set_audit_context
from app.db.session import SessionScope
from app.maintenance import audit_cold, cold_storage
from app.maintenance.cold_storage import Unit
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository import audit as audit_repository
from app.maintenance.repository import audit_chain as chain_repository
from app.maintenance.repository import cold_storage as repository
from app.maintenance.repository import partitions as partition_repository
from app.maintenance.repository.partitions import Partition
from app.months import Month

SERVICE = "RetentionJob"


class RetentionError(RuntimeError):
    """Counts did not add up (the unit's transaction rolled back)."""


@dataclass(frozen=True)
class Context:
    transaction: SessionScope
    store: ColdStore
    run_id: str
    correlation: uuid.UUID
    user: str


def months_due(session: Any, table: str, cutoff: date) -> list[Month]:
    return [Month.of(d) for d in repository.months_due(session, table, cutoff)]


def _audit(
    ctx: Context, session: Any, entity: str, operation: str, details: dict[str, Any]
) -> None:
    audit_repository.add_audit_row(
        session,
        entity_type=entity,
        entity_id=None,
        operation=operation,
        correlation_id=ctx.correlation,
        user_id=ctx.user,
        service_name=SERVICE,
        details=details,
    )


def _ids_in_set(ctx: Context, unit: Unit, manifest: dict[str, Any] | None) -> pa.Array:
    if not manifest or not manifest["files"]:
        return pa.array([], pa.string())
    ids = []
    for entry in manifest["files"]:
        with ctx.store.open(f"{unit.prefix}/{entry['file']}") as fh:
            ids.append(pq.read_table(fh, columns=["id"]).column("id"))
    return pa.chunked_array(ids).combine_chunks()


def retire_month(ctx: Context, table: str, month: Month, years: int) -> dict[str, Any] | None:
    """Export one month of a small table to its set and delete the rows, in one
    transaction (rows locked meanwhile); None when the month has no rows left."""
    unit = Unit(table, month)
    with ctx.transaction() as session:
        set_audit_context(session, ctx.correlation)
        locked = repository.lock_month(session, table, month.first, month.next_first)
        if not locked:
            return None
        columns = repository.columns(session, table)
        schema = cold_storage.schema_of(columns)
        manifest = cold_storage.read_manifest(ctx.store, unit)
        with tempfile.TemporaryDirectory(prefix="pn-retention-") as tmp:
            spool = Path(tmp) / "rows.csv"
            with spool.open("wb") as out:
                repository.copy_month(
                    session, table, schema.names, month.first, month.next_first, out
                )
            rows = cold_storage.read_csv(spool, schema)
        known = _ids_in_set(ctx, unit, manifest)
        new = rows.filter(pc.invert(pc.is_in(rows.column("id"), value_set=known)))
        files = list(manifest["files"]) if manifest else []
        if new.num_rows:
            files.append(
                cold_storage.store_file(
                    ctx.store,
                    unit,
                    lambda p: cold_storage.table_to_parquet(new, p),
                    run_id=ctx.run_id,
                )
            )
            manifest = cold_storage.write_manifest(ctx.store, unit, files, schema, years=years)
        deleted = repository.delete_month(session, table, month.first, month.next_first)
        if deleted != locked:
            raise RetentionError(f"{table} {month}: deleted {deleted} of {locked} locked rows")
        done = {
            "table": table,
            "month": str(month),
            "rows": int(new.num_rows),
            "deleted": deleted,
            "set": ctx.store.display(unit.prefix),
            "files": [f["file"] for f in files],
            "sha256": [f["sha256"] for f in files],
        }
        _audit(ctx, session, "ColdStorageSet", "ARCHIVE", done)
    return done


def retire_partition(ctx: Context, part: Partition, years: int) -> dict[str, Any] | None:
    """Freeze the partition (no row can be added or changed any more), export it to its
    set unless a verified set holds it already, then detach and drop it. Returns the set
    written (None: none needed)."""
    unit = Unit(part.table, part.month)
    done: dict[str, Any] | None = None
    with ctx.transaction() as session:
        try:
            partition_repository.freeze(session, part)
        except DBAPIError as exc:  # e.g. inside its horizon (migration 0011)
            raise RetentionError(f"{part.name}: {_first_line(exc)}") from exc
    with ctx.transaction() as session:
        count = partition_repository.count_rows(session, part)
        manifest = cold_storage.read_manifest(ctx.store, unit)
        current = (
            manifest is not None
            and manifest["rows"] == count
            and not cold_storage.verify_set(ctx.store, unit)
        )
        if count and not current:
            columns = repository.columns(session, part.table)
            schema = cold_storage.schema_of(columns)
            with tempfile.TemporaryDirectory(prefix="pn-retention-") as tmp:
                spool = Path(tmp) / "rows.csv"
                with spool.open("wb") as out:
                    repository.copy_partition(session, part, schema.names, out)
                entry = cold_storage.store_file(
                    ctx.store,
                    unit,
                    lambda p: cold_storage.csv_to_parquet(spool, p, schema),
                    run_id=ctx.run_id,
                )
            if entry["rows"] != count:
                raise RetentionError(f"{part.name}: wrote {entry['rows']} of {count} rows")
            new = cold_storage.write_manifest(ctx.store, unit, [entry], schema, years=years)
            for old in (manifest or {}).get("files", []):  # an earlier, incomplete attempt
                ctx.store.remove(f"{unit.prefix}/{old['file']}")
            manifest = new
            done = {
                "table": part.table,
                "month": str(part.month),
                "rows": count,
                "deleted": 0,
                "set": ctx.store.display(unit.prefix),
                "files": [entry["file"]],
                "sha256": [entry["sha256"]],
            }
        if part.table == "audit_log" and count:
            _check_audit_set(ctx, session, part)
    drop_partition(ctx, part, exported=count)
    return done


def _check_audit_set(ctx: Context, session: Any, part: Partition) -> None:
    """The cold audit set must hold every sealed statement of the month, unchanged
    (app/maintenance/audit_cold.py), before the month may leave the database."""
    found = audit_cold.read_month(ctx.store, part.month) or {}
    seals = list(chain_repository.seals(session, part.month.first, part.month.last))
    wrong = audit_cold.problems(seals, found)
    if wrong:
        raise RetentionError(f"{part.name}: cold set does not match the audit seals: {wrong[0]}")


def drop_partition(ctx: Context, part: Partition, *, exported: int | None) -> int:
    """Detach and drop one partition through the owner's ``pn_retire_partition`` (the
    maintenance role owns no table); audited. With ``exported`` (its rows, all in cold
    storage) the partition must be frozen: it cannot have changed since it was counted
    and exported, so the drop needs no scan and its work does not grow with the month
    (the function counts only a partition that is not frozen, and system_events')."""
    unit = Unit(part.table, part.month)
    cold_set, manifest_sha = None, None
    if exported is not None:
        cold_set = ctx.store.display(unit.prefix)
        if ctx.store.exists(unit.manifest):
            manifest_sha = ctx.store.sha256(unit.manifest)
    with ctx.transaction() as session:
        set_audit_context(session, ctx.correlation)
        if exported is not None and not partition_repository.is_frozen(session, part):
            raise RetentionError(f"{part.name}: not frozen, so not known to be exported whole")
        try:
            rows = partition_repository.retire(
                session, part, rows=exported, cold_set=cold_set, manifest_sha256=manifest_sha
            )
        except DBAPIError as exc:
            raise RetentionError(f"{part.name}: {_first_line(exc)}") from exc
        _audit(
            ctx,
            session,
            "Partition",
            "DROP",
            {"partition": part.name, "rows": rows, "exported": exported is not None},
        )
    return rows


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]


def expire(ctx: Context, today: date) -> list[str]:
    """Delete every cold set whose manifest says it has expired; audited one by one."""
    expired = []
    for unit, manifest in cold_storage.manifests(ctx.store):
        if date.fromisoformat(manifest["expires_on"]) > today:
            continue
        with ctx.transaction() as session:
            removed = cold_storage.remove_set(ctx.store, unit, manifest)
            _audit(
                ctx,
                session,
                "ColdStorageSet",
                "DELETE",
                {
                    "set": ctx.store.display(unit.prefix),
                    "table": unit.table,
                    "month": str(unit.month),
                    "rows": manifest["rows"],
                    "expires_on": manifest["expires_on"],
                    "retention_class": manifest["retention_class"],
                    "removed": removed,
                },
            )
        expired.append(unit.prefix)
    return expired
