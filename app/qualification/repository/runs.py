"""Run bookkeeping of qualification: the job_runs row and the audited run summary.

A run is one job_runs row (job 'qualification', run_key 'YYYY-MM'): Running while it
works, then Finished with its counts in ``stats`` or Failed with the error. Its
correlation id tags every qualification row it writes, their audit rows, and the run
summary row in audit_log (entity_type 'QualificationRun', operation 'PROCESS'). The
caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app.db import audit
from app.models import JobRun
from app.models.enums import RunStatus
from app.months import Month

JOB = "qualification"
SERVICE = "QualificationEngine"
NOTIFICATIONS_STARTED = "notifications_enqueued_at"
OUTBOX_JOB = "notifications"  # app.notifications.outbox.JOB (not imported: the stages stay apart)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def start_run(session: Session, month: Month, *, triggered_by: str, recompute: bool) -> JobRun:
    run = JobRun(
        job=JOB,
        run_key=str(month),
        status=str(RunStatus.RUNNING),
        triggered_by=triggered_by[:100],
        stats={"recompute": recompute},
    )
    session.add(run)
    session.flush()
    session.refresh(run)  # server defaults: correlation_id, started_at
    return run


def finish_run(session: Session, run_id: uuid.UUID, stats: dict[str, Any]) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(
            status=str(RunStatus.FINISHED),
            finished_at=_utcnow(),
            stats=JobRun.stats.op("||")(bindparam("new_stats", stats, type_=JSONB)),
        )
    )


def fail_run(session: Session, run_id: uuid.UUID, error: str) -> None:
    session.execute(
        update(JobRun)
        .where(JobRun.id == run_id)
        .values(status=str(RunStatus.FAILED), finished_at=_utcnow(), error=error[:2000])
    )


def audit_summary(
    session: Session,
    run: JobRun,
    details: dict[str, Any],
    *,
    user_id: str | None,
) -> None:
    """The run's own audit row, beside the one-per-qualification rows of the trigger."""
    audit.record(
        session,
        entity_type="QualificationRun",
        entity_id=run.id,
        operation="PROCESS",
        correlation_id=run.correlation_id,
        user_id=user_id,
        service_name=SERVICE,
        details=details,
    )


def finished_months(session: Session, months: Iterable[Month]) -> set[str]:
    """Which of ``months`` have at least one finished qualification run."""
    keys = [str(m) for m in months]
    rows = session.scalars(
        select(JobRun.run_key).where(
            JobRun.job == JOB,
            JobRun.run_key.in_(keys),
            JobRun.status == str(RunStatus.FINISHED),
        )
    )
    return set(rows)


def months_notified(session: Session, months: Iterable[Month]) -> set[str]:
    """Which of ``months`` had their notification stage started AND their outbox prepared.

    The mark alone is not enough: it is written when ``prepare_month`` is *enqueued*, and
    the broker may lose that message (Redis FLUSHALL or restart before a worker took
    it; found by scripts/chaos.py). The outbox's own job_runs row (job 'notifications',
    written in the transaction that inserts the outbox rows) proves the stage ran, so a
    month whose prepare message was lost is handed to the notifications again (prepare
    is idempotent).
    """
    keys = [str(m) for m in months]
    rows = session.scalars(
        select(JobRun.run_key).where(
            JobRun.job == JOB,
            JobRun.run_key.in_(keys),
            JobRun.status == str(RunStatus.FINISHED),
            JobRun.stats.has_key(NOTIFICATIONS_STARTED),
        )
    )
    prepared = session.scalars(
        select(JobRun.run_key).where(JobRun.job == OUTBOX_JOB, JobRun.run_key.in_(keys))
    )
    return set(rows) & set(prepared)


def mark_notifications_started(session: Session, month: Month) -> None:
    """Record on the month's finished runs that the notification stage was enqueued."""
    mark = {NOTIFICATIONS_STARTED: _utcnow().isoformat()}
    session.execute(
        update(JobRun)
        .where(
            JobRun.job == JOB,
            JobRun.run_key == str(month),
            JobRun.status == str(RunStatus.FINISHED),
        )
        .values(stats=JobRun.stats.op("||")(bindparam("mark", mark, type_=JSONB)))
    )


def latest_run(session: Session, month: Month) -> JobRun | None:
    return session.scalars(
        select(JobRun)
        .where(JobRun.job == JOB, JobRun.run_key == str(month))
        .order_by(JobRun.started_at.desc())
        .limit(1)
    ).first()
