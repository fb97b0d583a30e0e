"""What is tracked: submitted notifications with their latest delivery state, and the
days that have messages due for a check.

History is 1:N: a notification's *latest* ``delivery_status`` row (newest ``created_at``)
is its current state. A change of carrier status adds a row; a poll that sees no change
touches the latest row (``last_check_timestamp``, ``attempts``). ``attempts`` carries on
from row to row, so the latest row's value is the number of polls of that message, and
the backoff is taken from it. The first final row wins: nothing is written after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.enums import SubmissionStatus

SUBMITTED = str(SubmissionStatus.SUBMITTED)

# The latest history row of each submitted notification, in a window of submission times.
_LATEST = """
    SELECT n.id, n.carrier_reference_id AS sid, n.submission_timestamp,
           ds.status, ds.carrier_status, ds.status_code, ds.final_status,
           ds.attempts, ds.last_check_timestamp
    FROM notifications n
    LEFT JOIN LATERAL (
        SELECT d.status, d.carrier_status, d.status_code, d.final_status, d.attempts,
               d.last_check_timestamp
        FROM delivery_status d WHERE d.notification_id = n.id
        ORDER BY d.created_at DESC, d.id DESC LIMIT 1
    ) ds ON true
    WHERE n.submission_status = :submitted AND n.carrier_reference_id IS NOT NULL
      AND n.submission_timestamp >= :start AND n.submission_timestamp < :end
"""

# When a non-final message is due: no poll yet -> backoff[0] after submission; else
# backoff[attempts] (the last value repeating) after the last check; always once past
# the deadline (one last look before the 'Unknown' verdict).
_DUE = """
    (x.final_status IS NOT TRUE) AND (
        x.submission_timestamp <= :deadline_cutoff
        OR COALESCE(x.last_check_timestamp, x.submission_timestamp)
           + make_interval(mins => (CAST(:backoff AS int[]))[
                 LEAST(COALESCE(x.attempts, 0), cardinality(CAST(:backoff AS int[])) - 1) + 1])
           <= :now
    )
"""

_DUE_DAYS = text(
    f"""
    SELECT CAST(x.submission_timestamp AS date) AS day,
           count(*) FILTER (WHERE {_DUE}) AS due,
           count(*) FILTER (WHERE x.final_status IS NOT TRUE) AS open,
           count(*) AS total
    FROM ({_LATEST}) x
    GROUP BY 1
    HAVING count(*) FILTER (WHERE {_DUE}) > 0
    ORDER BY 1
    """
)


@dataclass(frozen=True)
class DueDay:
    day: date
    due: int  # messages due for a check now
    open: int  # messages of the day without a final status
    total: int  # messages submitted that day (about what the carrier lists for it)


@dataclass(frozen=True)
class Tracked:
    """A submitted notification and its latest delivery state (None: never polled)."""

    id: uuid.UUID
    sid: str
    submitted_at: datetime
    status: str | None
    carrier_status: str | None
    final: bool
    attempts: int
    last_check: datetime | None

    def is_due(self, now: datetime, backoff: Sequence[int], deadline: timedelta) -> bool:
        if self.final:
            return False
        if self.submitted_at <= now - deadline:
            return True
        minutes = backoff[min(self.attempts, len(backoff) - 1)]
        return (self.last_check or self.submitted_at) + timedelta(minutes=minutes) <= now


def due_days(
    session: Session,
    *,
    now: datetime,
    backoff: Sequence[int],
    deadline: timedelta,
    lookback: timedelta,
) -> list[DueDay]:
    """The submission days (UTC) that have messages due for a check."""
    rows = session.execute(
        _DUE_DAYS,
        {
            "submitted": SUBMITTED,
            "start": now - lookback,
            "end": now + timedelta(days=1),
            "now": now,
            "backoff": list(backoff),
            "deadline_cutoff": now - deadline,
        },
    )
    return [DueDay(r.day, int(r.due), int(r.open), int(r.total)) for r in rows]


def load_day(session: Session, day: date) -> list[Tracked]:
    """Every submitted notification of ``day`` (UTC) with its latest state, final or not."""
    start = datetime(day.year, day.month, day.day)
    rows = session.execute(
        text(_LATEST),
        {"submitted": SUBMITTED, "start": start, "end": start + timedelta(days=1)},
        execution_options={"yield_per": 5000},
    )
    return [
        Tracked(
            id=r.id,
            sid=r.sid,
            submitted_at=r.submission_timestamp,
            status=r.status,
            carrier_status=r.carrier_status,
            final=bool(r.final_status),
            attempts=int(r.attempts or 0),
            last_check=r.last_check_timestamp,
        )
        for r in rows
    ]
