"""SQL of the exporters: job freshness from ``job_runs`` and the schema revision.

Read-only and bounded: one aggregate over the runs started in the last ``window_days``
(the ``idx_job_runs_started`` index), under a short statement timeout, so a scrape can
never hold the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, text
from sqlalchemy.orm import Session

# Timestamps are TIMESTAMP without time zone in UTC (every connection runs timezone=UTC):
# extract(epoch ...) of such a value is its Unix time.
_FRESHNESS = text(
    """
    SELECT job,
           extract(epoch FROM max(finished_at) FILTER (WHERE status = 'Finished'))
               AS last_success,
           extract(epoch FROM max(finished_at) FILTER (WHERE status = 'Failed'))
               AS last_failure,
           (array_agg(extract(epoch FROM finished_at - started_at) ORDER BY finished_at DESC)
               FILTER (WHERE status = 'Finished'))[1] AS last_duration,
           count(*) FILTER (WHERE status = 'Running') AS running
    FROM job_runs
    WHERE started_at > LOCALTIMESTAMP - make_interval(days => :days)
    GROUP BY job
    ORDER BY job
    """
)


def job_freshness(
    session: Session, window_days: int, timeout_ms: int = 2000
) -> Sequence[RowMapping]:
    """Per job: last_success, last_failure (Unix time or None), last_duration (s), running."""
    session.execute(text("SET TRANSACTION READ ONLY"))
    timeout = text("SELECT set_config('statement_timeout', :t, true)")
    session.execute(timeout, {"t": str(timeout_ms)})
    return session.execute(_FRESHNESS, {"days": window_days}).mappings().all()


# Outbox rows not settled yet, by state and age bucket (Queued: since created; Sending:
# since claimed). Only non-final rows are counted.
_PENDING = text(
    """
    SELECT submission_status AS state,
           CASE WHEN age < interval '5 minutes' THEN 'under_5m'
                WHEN age < interval '1 hour' THEN '5m_to_1h'
                ELSE 'over_1h' END AS age,
           count(*) AS rows
    FROM (
        SELECT submission_status,
               LOCALTIMESTAMP - CASE WHEN submission_status = 'Sending'
                                     THEN coalesce(claimed_at, updated_at, created_at)
                                     ELSE created_at END AS age
        FROM notifications
        WHERE submission_status IN ('Queued', 'Sending')
    ) pending
    GROUP BY 1, 2
    """
)


def pending_notifications(session: Session) -> Sequence[RowMapping]:
    """(state, age bucket, rows) of the outbox rows in Queued or Sending."""
    return session.execute(_PENDING).mappings().all()


def schema_revision(session: Session) -> Any:
    """The database's Alembic revision (None: not migrated)."""
    return session.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()
