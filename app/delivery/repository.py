"""SQL of delivery tracking (STYLE.md 3: queries live here; the caller owns the transaction).

History is 1:N: a notification's *latest* ``delivery_status`` row (newest ``created_at``)
is its current state. A change of carrier status adds a row; a poll that sees no change
touches the latest row (``last_check_timestamp``, ``attempts``). ``attempts`` carries on
from row to row, so the latest row's value is the number of polls of that message, and
the backoff is taken from it. The first final row wins: nothing is written after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.delivery.mapping import Mapped
from app.models import DeliveryStatus
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


@dataclass(frozen=True)
class Report:
    """What the carrier said about one notification (or the deadline's verdict)."""

    notification_id: uuid.UUID
    mapped: Mapped
    delivered_at: datetime | None = None
    deadline: bool = False  # synthetic: never a contradiction of an earlier final row


@dataclass
class ApplyResult:
    inserted: list[tuple[uuid.UUID, Mapped]]
    touched: int = 0
    ignored_after_final: int = 0
    contradictions: list[dict[str, Any]] | None = None


_LOCK = text("SELECT id FROM notifications WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")
_LATEST_ROWS = text(
    """
    SELECT DISTINCT ON (notification_id) id, notification_id, status, carrier_status,
           status_code, final_status, attempts
    FROM delivery_status WHERE notification_id = ANY(:ids)
    ORDER BY notification_id, created_at DESC, id DESC
    """
)
_TOUCH = text(
    """
    UPDATE delivery_status
    SET last_check_timestamp = :now, updated_at = :now, attempts = COALESCE(attempts, 0) + 1
    WHERE id = ANY(:ids)
    """
)


def apply_reports(session: Session, reports: Sequence[Report], now: datetime) -> ApplyResult:
    """Record carrier reports: a new row on change, a touch otherwise, first final wins.

    The notifications are locked (in id order, so two pollers never deadlock) and their
    latest rows re-read under the lock: a concurrent poller's row is seen, not doubled.
    """
    result = ApplyResult(inserted=[], contradictions=[])
    if not reports:
        return result
    ids = sorted({r.notification_id for r in reports})
    session.execute(_LOCK, {"ids": ids})
    latest = {row.notification_id: row for row in session.execute(_LATEST_ROWS, {"ids": ids})}
    rows: list[dict[str, Any]] = []
    touch: list[uuid.UUID] = []
    done: set[uuid.UUID] = set()
    for report in reports:
        nid, m = report.notification_id, report.mapped
        if nid in done:
            continue  # the same message twice in one batch: keep the first
        done.add(nid)
        current = latest.get(nid)
        if current is not None and current.final_status:
            if m.final and not report.deadline and m.status != current.status:
                result.contradictions.append(  # type: ignore[union-attr]
                    {
                        "notification_id": str(nid),
                        "final_status": current.status,
                        "final_carrier_status": current.carrier_status,
                        "reported_status": str(m.status),
                        "reported_carrier_status": m.carrier_status,
                        "reported_code": m.status_code,
                    }
                )
            else:
                result.ignored_after_final += 1
            continue
        unchanged = (
            current is not None
            and current.status == str(m.status)
            and current.carrier_status == m.carrier_status
            and current.status_code == m.status_code
            and not report.deadline
        )
        if unchanged and current is not None:
            touch.append(current.id)
            continue
        attempts = (int(current.attempts or 0) if current is not None else 0) + (
            0 if report.deadline else 1
        )
        rows.append(
            {
                "notification_id": nid,
                "status": str(m.status),
                "status_code": m.status_code,
                "failure_reason": m.failure_reason,
                "delivery_timestamp": report.delivered_at,
                "last_check_timestamp": now,
                "attempts": attempts,
                "final_status": m.final,
                "created_at": now,
                "updated_at": now,
                "carrier_status": m.carrier_status,
            }
        )
        result.inserted.append((nid, m))
    if rows:
        session.execute(insert(DeliveryStatus), rows)
    if touch:
        session.execute(_TOUCH, {"ids": touch, "now": now})
    result.touched = len(touch)
    return result


def already_reported(session: Session, event_type: str, notification_ids: list[str]) -> set[str]:
    """Notification ids that already have a system event of this type (raise each once)."""
    if not notification_ids:
        return set()
    rows = session.execute(
        text(
            "SELECT DISTINCT event_data->>'notification_id' FROM system_events "
            "WHERE event_type = :t AND event_data->>'notification_id' = ANY(:ids)"
        ),
        {"t": event_type, "ids": notification_ids},
    )
    return {r[0] for r in rows}


# A day batch at work holds this session-level advisory lock on a connection of its own
# (``day_lock``). A worker killed mid-batch loses its connection and with it the lock, so
# its unfinished run stops blocking the day at once, not after ``within`` (the chaos
# run, scripts/chaos.py, showed delivery tracking stalled 15 minutes by a SIGKILL).
_DAY_LOCK = "hashtext('delivery_poll:' || :day)"


def running_days(session: Session, within: timedelta = timedelta(minutes=15)) -> set[str]:
    """Days whose poll batch started recently, has not finished, and is alive.

    Older unfinished runs are taken as dead (worker killed): their day is polled again;
    so is a recent one whose lock nobody holds.
    """
    rows = session.execute(
        text(
            "SELECT DISTINCT run_key FROM job_runs WHERE job = 'delivery_poll' "
            "AND finished_at IS NULL AND started_at > (now() AT TIME ZONE 'UTC') - :within"
        ),
        {"within": within},
    )
    busy = set()
    for (day,) in rows:
        # Taken here only until this transaction ends: just a probe for a live holder.
        free = session.scalar(text(f"SELECT pg_try_advisory_xact_lock({_DAY_LOCK})"), {"day": day})
        if not free:
            busy.add(day)
    return busy


@contextmanager
def day_lock(engine: Engine, day: date) -> Iterator[bool]:
    """Hold the day's poll lock while the block runs; yields False if another holds it."""
    conn = engine.connect()
    held = False
    try:
        held = bool(conn.scalar(text(f"SELECT pg_try_advisory_lock({_DAY_LOCK})"),
                                {"day": day.isoformat()}))  # fmt: skip
        conn.commit()
        yield held
    finally:
        try:
            if held:
                conn.execute(text(f"SELECT pg_advisory_unlock({_DAY_LOCK})"),
                             {"day": day.isoformat()})  # fmt: skip
                conn.commit()
        except DBAPIError:
            pass  # the server went away: the lock went with the connection
        finally:
            conn.close()
