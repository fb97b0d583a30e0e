"""Retention (seed section 9, issue 21): months leave the database for cold storage.

A run, in order:

1. partitions ahead (app/maintenance/partitions.py);
2. the small tables by month, foreign-key order: for each month past the hot period
   (``RETENTION_HOT_DAYS``, by ``notifications.created_at``) its delivery rows, then its
   notifications; then the qualification months past it whose rows no notification still
   refers to. Per table-month, one transaction: lock the rows, stream them out, write a
   Parquet file, verify the stored object, write the manifest, delete the rows (the
   count must match), audit row;
3. the partitioned tables: each monthly partition of daily_balance_checks past the hot
   period and of audit_log past ``RETENTION_AUDIT_HOT_DAYS`` is exported (Parquet,
   verified by re-reading the object), then **detached and dropped**: no row is moved or
   deleted one by one and nothing is kept in the database;
4. system_events partitions past ``RETENTION_SYSTEM_EVENTS_DAYS`` are dropped;
5. expiry: every file set whose manifest's ``expires_on`` has come (7 years after its
   month, the audit log 10) is deleted, each deletion audited.

Resumable and idempotent: a set whose manifest already matches the partition is not
written again; a small table's month found again (a crash between manifest and delete,
or late rows) adds only the rows its set does not hold yet. One run at a time (advisory
lock), with a lease (app/db/leases) while it works.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.db.leases import Heartbeat
from app.db.session import SessionScope, get_engine
from app.maintenance import partitions
from app.maintenance import retention_units as units
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository import audit as audit_repository
from app.maintenance.repository import retention as repository
from app.maintenance.repository.partitions import list_partitions
from app.maintenance.repository.retention import JOB
from app.maintenance.repository.retention import LOCK_KEY as LOCK_KEY  # the run's lock
from app.models.enums import Severity
from app.months import Month
from app.observability import metrics
from app.observability.events import record_event

SERVICE = units.SERVICE
RetentionError = units.RetentionError

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Policy:
    hot_days: int = 365
    audit_hot_days: int = 730
    events_days: int = 365
    batch_size: int = 5000
    cold_dir: Path | None = None  # a local folder; else cold_url; else the settings'
    cold_url: str | None = None
    years: int = 7
    audit_years: int = 10
    months_ahead: int = 2

    @classmethod
    def from_settings(cls) -> Policy:
        from app.config import get_settings

        s = get_settings()
        return cls(
            hot_days=s.retention_hot_days,
            audit_hot_days=s.retention_audit_hot_days,
            events_days=s.retention_system_events_days,
            batch_size=s.retention_batch_size,
            years=s.cold_storage_years,
            audit_years=s.cold_storage_audit_years,
            months_ahead=s.partitions_months_ahead,
        )

    def store(self) -> ColdStore:
        if self.cold_dir is not None:
            return ColdStore(str(Path(self.cold_dir).resolve()))
        if self.cold_url is not None:
            return ColdStore(self.cold_url)
        return ColdStore.from_settings()


@dataclass
class RetentionResult:
    run_id: uuid.UUID | None
    exported: list[dict[str, Any]] = field(default_factory=list)  # one per set written
    deleted: dict[str, int] = field(default_factory=dict)  # small tables' rows deleted
    dropped: list[str] = field(default_factory=list)  # partitions dropped
    expired: list[str] = field(default_factory=list)  # cold sets deleted
    store: str | None = None
    seconds: float = 0.0
    skipped: str | None = None  # why nothing ran (another run holds the lock)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run(
    transaction: SessionScope,
    *,
    policy: Policy | None = None,
    store: ColdStore | None = None,
    triggered_by: str = "worker",
    today_local: date | None = None,
    now_utc: datetime | None = None,
    progress: Progress | None = None,
) -> RetentionResult:
    """One retention run, recorded in job_runs as job 'retention' (see the module doc).

    Handed a ``SessionScope``: the run commits once per month retired, so a crash loses
    one month's work at most and the next run resumes.
    """
    from app.config import get_settings

    policy = policy or Policy.from_settings()
    store = store or policy.store()
    now_utc = now_utc or _utcnow()
    today_local = today_local or datetime.now(get_settings().tz).date()
    started = time.monotonic()
    with repository.run_lock(get_engine()) as got:
        if not got:
            return RetentionResult(run_id=None, skipped="another retention run holds the lock")
        with transaction() as session:
            repository.abandon_running(session, now_utc)  # under the lock: dead runs'
            job = repository.start_run(session, today_local.isoformat(), triggered_by[:100])
            run_id, correlation = job.id, job.correlation_id
            partitions.ensure_ahead(session, today_local, policy.months_ahead, months_back=0)
        result = RetentionResult(run_id=run_id, store=store.display(""))
        ctx = units.Context(transaction, store, str(run_id), correlation, triggered_by[:100])
        heartbeat = Heartbeat(transaction, run_id).start()
        try:
            _small_tables(ctx, policy, today_local, result, progress)
            _partitions(ctx, policy, today_local, now_utc, result, progress)
            result.expired = units.expire(ctx, today_local)
            result.seconds = time.monotonic() - started
            _finish(transaction, result, correlation, triggered_by)
        except BaseException as exc:
            with transaction() as session:
                repository.fail_run(session, run_id, str(exc)[:2000], _utcnow())
            metrics.JOB_RUNS.labels(pn_job=JOB, outcome="failed").inc()
            raise
        finally:
            heartbeat.stop()
    return result


def _count(result: RetentionResult, table: str, done: dict[str, Any] | None) -> None:
    if done is None:
        return
    result.exported.append(done)
    result.deleted[table] = result.deleted.get(table, 0) + done["deleted"]
    metrics.RETENTION_ROWS.labels(table=table, action="exported").inc(done["rows"])
    metrics.RETENTION_ROWS.labels(table=table, action="deleted").inc(done["deleted"])


def _small_tables(
    ctx: units.Context,
    policy: Policy,
    today: date,
    result: RetentionResult,
    progress: Progress | None,
) -> None:
    cutoff = today - timedelta(days=policy.hot_days)
    with ctx.transaction() as session:
        notification_months = units.months_due(session, "notifications", cutoff)
    for n, month in enumerate(notification_months, 1):
        for table in ("delivery_status", "notifications"):  # children first
            _count(result, table, units.retire_month(ctx, table, month, policy.years))
        if progress:
            progress("notifications", n, len(notification_months))
    with ctx.transaction() as session:
        qualification_months = units.months_due(session, "monthly_qualifications", cutoff)
    for month in qualification_months:
        done = units.retire_month(ctx, "monthly_qualifications", month, policy.years)
        _count(result, "monthly_qualifications", done)


def _due(session: Session, table: str, last_day: date) -> list[partitions.Partition]:
    """Partitions of ``table`` whose month ended on or before ``last_day``."""
    return [p for p in list_partitions(session, table) if p.month.next_first <= last_day]


def _partitions(
    ctx: units.Context,
    policy: Policy,
    today: date,
    now_utc: datetime,
    result: RetentionResult,
    progress: Progress | None,
) -> None:
    audit_end = (now_utc - timedelta(days=policy.audit_hot_days)).date()
    events_end = (now_utc - timedelta(days=policy.events_days)).date()
    with ctx.transaction() as session:
        due = [
            *_due(session, "daily_balance_checks", today - timedelta(days=policy.hot_days)),
            *_due(session, "audit_log", audit_end),
        ]
        events = _due(session, "system_events", events_end)
    for n, part in enumerate(due, 1):
        years = policy.audit_years if part.table == "audit_log" else policy.years
        done = units.retire_partition(ctx, part, years)
        if done is not None:
            result.exported.append(done)
            metrics.RETENTION_ROWS.labels(table=part.table, action="exported").inc(done["rows"])
        result.dropped.append(part.name)
        if progress:
            progress("partitions", n, len(due))
    for part in events:
        rows = units.drop_partition(ctx, part, exported=None)
        result.dropped.append(part.name)
        metrics.RETENTION_ROWS.labels(table="system_events", action="deleted").inc(rows)


def _finish(
    transaction: SessionScope,
    result: RetentionResult,
    correlation: uuid.UUID,
    triggered_by: str,
) -> None:
    stats: dict[str, Any] = {
        "exported_sets": len(result.exported),
        "exported_rows": sum(e["rows"] for e in result.exported),
        "deleted": result.deleted,
        "dropped": result.dropped,
        "expired": result.expired,
        "store": result.store,
        "seconds": round(result.seconds, 2),
    }
    with transaction() as session:
        repository.finish_run(session, result.run_id, stats, _utcnow())
        audit_repository.add_audit_row(
            session,
            entity_type="RetentionRun",
            entity_id=result.run_id,
            operation="PROCESS",
            correlation_id=correlation,
            user_id=triggered_by[:100],
            service_name=SERVICE,
            details={**stats, "sets": result.exported},
        )
        record_event(
            session,
            "retention.finished",
            f"retention exported {stats['exported_rows']} rows in {stats['exported_sets']} "
            f"sets, dropped {len(result.dropped)} partitions, expired "
            f"{len(result.expired)} sets",
            severity=Severity.INFO,
            service_name=SERVICE,
            data={k: v for k, v in stats.items() if k != "store"},
            correlation_id=correlation,
        )
    metrics.JOB_RUNS.labels(pn_job=JOB, outcome="finished").inc()
    metrics.JOB_DURATION_SECONDS.labels(pn_job=JOB).observe(result.seconds)


__all__ = ["LOCK_KEY", "Month", "Policy", "RetentionError", "RetentionResult", "run"]
