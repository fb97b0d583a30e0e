"""SQL of ``premium-notify status``: recent runs per job and stuck outbox rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

from app.db.leases import LEASE_SECONDS, STALE

# The latest ``per_job`` runs of every job (window function: one pass over job_runs);
# ``stale``: Running, but its lease expired (its process died: app/db/leases.py).
_RECENT_RUNS = text(
    f"""
    SELECT id, job, run_key, status, triggered_by, started_at, finished_at, stats, error,
           heartbeat_at, lease_owner, stale
    FROM (
        SELECT r.*, ({STALE}) AS stale,
               row_number() OVER (PARTITION BY job ORDER BY started_at DESC) AS rn
        FROM job_runs r
    ) ranked
    WHERE rn <= :per_job
    ORDER BY job, started_at DESC
    """
)

# Stuck rows. Queued/Sending use the outbox's own timestamps; "awaiting delivery" is a
# submitted message whose latest delivery_status row is not final past the deadline
# (or that has none at all).
_STUCK = text(
    """
    SELECT 'queued' AS kind, count(*) AS rows, min(created_at) AS oldest
    FROM notifications
    WHERE submission_status = 'Queued' AND created_at < :queued_before
    UNION ALL
    SELECT 'sending', count(*), min(coalesce(claimed_at, updated_at, created_at))
    FROM notifications
    WHERE submission_status = 'Sending'
      AND coalesce(claimed_at, updated_at, created_at) < :sending_before
    UNION ALL
    SELECT 'awaiting_final_delivery', count(*), min(n.submission_timestamp)
    FROM notifications n
    WHERE n.submission_status = 'Submitted'
      AND n.submission_timestamp < :delivery_before
      AND NOT EXISTS (
          SELECT 1 FROM delivery_status d
          WHERE d.notification_id = n.id AND d.final_status IS TRUE
      )
    """
)


def recent_runs(session: Session, per_job: int) -> Sequence[RowMapping]:
    """job_runs rows (job, run_key, status, ..., stats, error): the newest ``per_job`` of
    each job, grouped by job, newest first."""
    params = {"per_job": per_job, "lease": LEASE_SECONDS}
    return session.execute(_RECENT_RUNS, params).mappings().all()


def stuck_counts(
    session: Session,
    *,
    queued_before: datetime,
    sending_before: datetime,
    delivery_before: datetime,
) -> Sequence[RowMapping]:
    """One row (kind, rows, oldest) per kind: queued, sending, awaiting_final_delivery."""
    params = {
        "queued_before": queued_before,
        "sending_before": sending_before,
        "delivery_before": delivery_before,
    }
    return session.execute(_STUCK, params).mappings().all()
