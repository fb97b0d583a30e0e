"""SQL of the retention run's bookkeeping: its lock and its job_runs row.

The months' rows: repository.cold_storage; the partitions: repository.partitions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text, update
from sqlalchemy.orm import Session

from app.models import JobRun
from app.models.enums import RunStatus

JOB = "retention"
LOCK_KEY = 0x706E5F7265746E  # "pn_retn": one retention run per database


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
