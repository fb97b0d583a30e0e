"""SQL of the retention run: the run's job_runs row, archival batches, old system events.

A batch is one transaction the caller owns: ``begin_batch`` (lock timeout, audit
bypass), ``batch_ids`` (FOR UPDATE SKIP LOCKED, so live workers are never blocked),
``copy_to_archive``, ``count_archived``, ``delete_rows``. Table names formatted into
the statements come from ``STEPS`` and the archive models, never from input.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from app.maintenance.repository.audit import archive_rows, retire_rows
from app.models import ARCHIVE_TABLES, JobRun
from app.models.enums import RunStatus

JOB = "retention"
LOCK_KEY = 0x706E5F7265746E  # "pn_retn": one retention run per database
EXPORTED_THROUGH = "exported_through"
AUDIT_TABLE = "audit_log"


@dataclass(frozen=True)
class Step:
    table: str
    predicate: str  # on alias t; parameters :cutoff (timestamp), :cutoff_date (date)
    audit: bool = False  # audit_log: 2-year cutoff, moved by the audit writer's functions


# In foreign-key order: each parent moves only once nothing in the hot table refers to it.
STEPS = (
    Step(
        "delivery_status",
        "t.notification_id IN (SELECT n.id FROM notifications n WHERE n.created_at < :cutoff)",
    ),
    Step(
        "notifications",
        "t.created_at < :cutoff AND NOT EXISTS "
        "(SELECT 1 FROM delivery_status d WHERE d.notification_id = t.id)",
    ),
    Step(
        "monthly_qualifications",
        "t.qualification_month + interval '1 month' <= :cutoff_date AND NOT EXISTS "
        "(SELECT 1 FROM notifications n WHERE n.qualification_id = t.id)",
    ),
    Step("daily_balance_checks", "t.check_date < :cutoff_date"),
    Step("audit_log", "t.timestamp < :cutoff", audit=True),
)


def _rowcount(result: Any) -> int:
    # DML results are CursorResults; the typed Session.execute says Result.
    return int(result.rowcount)


@contextmanager
def run_lock(engine: Engine) -> Iterator[bool]:
    """Hold the retention advisory lock on a connection of its own while the block runs
    (across the run's many transactions); yields False if another run holds it."""
    with engine.connect() as conn:
        got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}))
        conn.commit()
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()


def db_now(session: Session) -> datetime:
    """The database's LOCALTIMESTAMP (UTC): the export window's end."""
    value: datetime = session.execute(text("SELECT LOCALTIMESTAMP")).scalar_one()
    return value


def abandon_running(session: Session, now: datetime) -> None:
    """Mark every 'Running' retention run Failed ('abandoned'): under the lock, any such
    row is a dead run's."""
    session.execute(
        update(JobRun)
        .where(JobRun.job == JOB, JobRun.status == str(RunStatus.RUNNING))
        .values(status=str(RunStatus.FAILED), finished_at=now, error="abandoned")
    )


def start_run(session: Session, run_key: str, triggered_by: str) -> JobRun:
    """Insert the run's job_runs row and read back its id and correlation id."""
    job = JobRun(job=JOB, run_key=run_key, triggered_by=triggered_by)
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def last_watermark(session: Session) -> str | None:
    """``exported_through`` of the newest finished retention run that recorded one."""
    value = session.scalar(
        select(JobRun.stats[EXPORTED_THROUGH].astext)
        .where(JobRun.job == JOB, JobRun.status == str(RunStatus.FINISHED))
        .where(JobRun.stats.has_key(EXPORTED_THROUGH))
        .order_by(JobRun.started_at.desc())
        .limit(1)
    )
    return str(value) if value else None


def fail_run(session: Session, run_id: uuid.UUID | None, error: str, now: datetime) -> None:
    """Mark the run Failed with (the start of) its error."""
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(status=str(RunStatus.FAILED), finished_at=now, error=error)
    )


def finish_run(
    session: Session, run_id: uuid.UUID | None, stats: dict[str, Any], now: datetime
) -> None:
    """Mark the run Finished with its stats (which carry the export watermark)."""
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(status=str(RunStatus.FINISHED), finished_at=now, stats=stats)
    )


def begin_batch(session: Session, step: Step) -> None:
    """Transaction settings of one archival batch: a lock timeout. (The audit log needs no
    bypass: its rows move through the audit writer's functions.)"""
    session.execute(text("SET LOCAL lock_timeout = '10s'"))


def batch_ids(session: Session, step: Step, params: dict[str, Any], limit: int) -> list[uuid.UUID]:
    """Up to ``limit`` ids of rows due for the archive, locked; rows other transactions
    hold are skipped (the next run takes them)."""
    return list(
        session.scalars(
            text(
                f"SELECT t.id FROM {step.table} t WHERE {step.predicate} "
                "ORDER BY t.id LIMIT :limit FOR UPDATE OF t SKIP LOCKED"
            ),
            {**params, "limit": limit},
        )
    )


def _archive_columns(table: str) -> str:
    archive = ARCHIVE_TABLES[f"{table}_archive"]
    return ", ".join(c.name for c in archive.columns if c.name != "archived_at")


def copy_to_archive(session: Session, table: str, ids: list[uuid.UUID]) -> None:
    """INSERT the rows into ``<table>_archive``; rows already there are left alone."""
    if table == AUDIT_TABLE:
        archive_rows(session, ids)
        return
    columns = _archive_columns(table)
    session.execute(
        text(
            f"INSERT INTO {table}_archive ({columns}) SELECT {columns} FROM {table} "
            "WHERE id = ANY(:ids) ON CONFLICT (id) DO NOTHING"
        ),
        {"ids": ids},
    )


def count_archived(session: Session, table: str, ids: list[uuid.UUID]) -> int:
    """How many of ``ids`` are in ``<table>_archive``."""
    return int(
        session.scalar(
            text(f"SELECT count(*) FROM {table}_archive WHERE id = ANY(:ids)"), {"ids": ids}
        )
        or 0
    )


def delete_rows(session: Session, table: str, ids: list[uuid.UUID]) -> int:
    """DELETE the rows from the hot table; returns how many went (audit rows: only those
    the archive holds unchanged)."""
    if table == AUDIT_TABLE:
        return retire_rows(session, ids)
    return _rowcount(
        session.execute(text(f"DELETE FROM {table} WHERE id = ANY(:ids)"), {"ids": ids})
    )


def delete_old_events(session: Session, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` system events created before ``before``; returns how many."""
    return _rowcount(
        session.execute(
            text(
                "DELETE FROM system_events WHERE id IN (SELECT id FROM system_events "
                "WHERE created_at < :before LIMIT :limit)"
            ),
            {"before": before, "limit": limit},
        )
    )
