"""Retention and archival (seed section 9): hot rows past their period move to archives.

Order matters because of foreign keys: delivery_status, then notifications, then
monthly_qualifications (each parent only once nothing in the hot table refers to it),
then daily_balance_checks, then audit_log (2 years). A notification's whole delivery
history moves with it. Every batch is one transaction: select ids (FOR UPDATE SKIP
LOCKED, so live workers are never blocked), INSERT into the archive (ON CONFLICT DO
NOTHING), check that every id is now in the archive, DELETE, check the count; any
mismatch rolls the batch back. system_events older than their period are deleted.
Then the rows archived since the last finished run are exported to cold storage.

Idempotent and resumable: a second run finds nothing to move; a run that died
part-way committed whole batches only, and the next run continues where it stopped
and exports what the dead run archived (the export watermark advances only when a run
finishes). One run at a time: a PostgreSQL advisory lock, held for the whole run.
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

from app.db.audit import set_audit_context
from app.db.leases import Heartbeat
from app.db.session import SessionScope, get_engine
from app.maintenance import cold_storage
from app.maintenance.repository import audit as audit_repository
from app.maintenance.repository import retention as repository
from app.maintenance.repository.retention import JOB, STEPS, Step
from app.maintenance.repository.retention import LOCK_KEY as LOCK_KEY  # the run's lock
from app.models.enums import Severity
from app.observability import metrics
from app.observability.events import record_event

SERVICE = "RetentionJob"
EXPORTED_THROUGH = repository.EXPORTED_THROUGH

Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Policy:
    hot_days: int = 365
    audit_hot_days: int = 730
    events_days: int = 365
    batch_size: int = 5000
    cold_dir: Path = Path(".data/cold-storage")

    @classmethod
    def from_settings(cls) -> Policy:
        from app.config import get_settings

        s = get_settings()
        return cls(
            hot_days=s.retention_hot_days,
            audit_hot_days=s.retention_audit_hot_days,
            events_days=s.retention_system_events_days,
            batch_size=s.retention_batch_size,
            cold_dir=s.cold_storage_dir,
        )


class RetentionError(RuntimeError):
    """A batch's counts did not add up (rolled back), or another run holds the lock."""


@dataclass
class RetentionResult:
    run_id: uuid.UUID | None
    moved: dict[str, int] = field(default_factory=dict)
    events_deleted: int = 0
    export_folder: str | None = None
    exported_files: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None  # why nothing ran (another run holds the lock)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def cutoffs(policy: Policy, now_utc: datetime, today_local: date) -> dict[bool, dict[str, Any]]:
    """Parameters per step kind (audit or not): timestamps in UTC, dates local."""
    return {
        audit: {
            "cutoff": now_utc - timedelta(days=days),
            "cutoff_date": today_local - timedelta(days=days),
        }
        for audit, days in ((False, policy.hot_days), (True, policy.audit_hot_days))
    }


def move_batch(session: Session, step: Step, params: dict[str, Any], limit: int) -> int:
    """Move up to ``limit`` rows of one table into its archive in the caller's transaction.

    Every id must reach the archive and leave the hot table; any mismatch raises, and
    the caller's transaction rolls the batch back.
    """
    repository.begin_batch(session, step)
    ids = repository.batch_ids(session, step, params, limit)
    if not ids:
        return 0
    repository.copy_to_archive(session, step.table, ids)
    archived = repository.count_archived(session, step.table, ids)
    if archived != len(ids):
        raise RetentionError(f"{step.table}: {archived} of {len(ids)} rows reached the archive")
    deleted = repository.delete_rows(session, step.table, ids)
    if deleted != len(ids):
        raise RetentionError(f"{step.table}: deleted {deleted} of {len(ids)} archived rows")
    return len(ids)


def last_watermark(session: Session) -> datetime | None:
    """End of the last finished run's export window (None before the first)."""
    value = repository.last_watermark(session)
    return datetime.fromisoformat(value) if value else None


def run(
    transaction: SessionScope,
    *,
    policy: Policy | None = None,
    triggered_by: str = "worker",
    today_local: date | None = None,
    now_utc: datetime | None = None,
    progress: Progress | None = None,
) -> RetentionResult:
    """Archive, delete expired events, export; recorded in job_runs as job 'retention'.

    Handed a ``SessionScope`` (production: ``app.db.session.session_scope``) rather than a
    session: the run commits many times (the run's row, every archival batch, the
    finish), so a crash loses one batch at most and the next run resumes. Besides those
    transactions it holds the run's advisory lock on a connection of its own and streams
    the cold-storage export over another (``get_engine``).
    """
    from app.config import get_settings

    policy = policy or Policy.from_settings()
    now_utc = now_utc or _utcnow()
    today_local = today_local or datetime.now(get_settings().tz).date()
    engine = get_engine()
    started = time.monotonic()
    with repository.run_lock(engine) as got:
        if not got:
            return RetentionResult(run_id=None, skipped="another retention run holds the lock")
        with transaction() as session:
            # We hold the lock, so any 'Running' retention row is a dead run's.
            repository.abandon_running(session, now_utc)
            job = repository.start_run(session, today_local.isoformat(), triggered_by[:100])
            run_id, correlation = job.id, job.correlation_id
            since = last_watermark(session)
        result = RetentionResult(run_id=run_id)
        heartbeat = Heartbeat(transaction, run_id).start()  # the run's lease (app/db/leases)
        try:
            _archive_all(policy, transaction, now_utc, today_local, correlation, result, progress)
            with transaction() as session:
                until = repository.db_now(session)
            folder = policy.cold_dir / f"{until:%Y/%m/%d}" / f"retention-{run_id}"
            files = cold_storage.export_window(engine, folder, since, until, run_id=str(run_id))
            if files:
                cold_storage.write_manifest(
                    folder, files, run_id=str(run_id), since=since, until=until
                )
                result.export_folder = str(folder)
            result.exported_files = [
                {"table": f.table, "rows": f.rows, "sha256": f.sha256} for f in files
            ]
            result.seconds = time.monotonic() - started
            _finish(transaction, result, correlation, until, triggered_by)
        except BaseException as exc:
            with transaction() as session:
                repository.fail_run(session, run_id, str(exc)[:2000], _utcnow())
            metrics.JOB_RUNS.labels(pn_job=JOB, outcome="failed").inc()
            raise
        finally:
            heartbeat.stop()
    return result


def _archive_all(
    policy: Policy,
    transaction: SessionScope,
    now_utc: datetime,
    today_local: date,
    correlation: uuid.UUID,
    result: RetentionResult,
    progress: Progress | None,
) -> None:
    params = cutoffs(policy, now_utc, today_local)
    for step in STEPS:
        moved = 0
        while True:
            with transaction() as session:
                set_audit_context(session, correlation)
                n = move_batch(session, step, params[step.audit], policy.batch_size)
            moved += n
            if progress:
                progress(step.table, moved, None)
            if n < policy.batch_size:
                break
        result.moved[step.table] = moved
        metrics.RETENTION_ROWS.labels(table=step.table, action="archived").inc(moved)
    before = now_utc - timedelta(days=policy.events_days)
    while True:
        with transaction() as session:
            n = repository.delete_old_events(session, before, policy.batch_size)
        result.events_deleted += n
        if n < policy.batch_size:
            break
    metrics.RETENTION_ROWS.labels(table="system_events", action="deleted").inc(
        result.events_deleted
    )


def _finish(
    transaction: SessionScope,
    result: RetentionResult,
    correlation: uuid.UUID,
    until: datetime,
    triggered_by: str,
) -> None:
    stats: dict[str, Any] = {
        "moved": result.moved,
        "archived": sum(result.moved.values()),
        "events_deleted": result.events_deleted,
        "exported_rows": sum(f["rows"] for f in result.exported_files),
        "export_folder": result.export_folder,
        EXPORTED_THROUGH: until.isoformat(),
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
            details={**stats, "files": result.exported_files},
        )
        record_event(
            session,
            "retention.finished",
            f"retention archived {stats['archived']} rows, deleted "
            f"{result.events_deleted} events, exported {stats['exported_rows']} rows",
            severity=Severity.INFO,
            service_name=SERVICE,
            data={k: v for k, v in stats.items() if k != "export_folder"},
            correlation_id=correlation,
        )
    metrics.JOB_RUNS.labels(pn_job=JOB, outcome="finished").inc()
    metrics.JOB_DURATION_SECONDS.labels(pn_job=JOB).observe(result.seconds)
