"""Poll runs of a day (``job_runs`` rows) and the day's advisory lock.

The caller owns the transaction, except ``day_lock``: it holds a session-level lock on
a connection of its own for as long as the day's batch works.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.models import JobRun
from app.models.enums import RunStatus

JOB = "delivery_poll"


def start_run(session: Session, day: date, triggered_by: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A new poll run of ``day``; returns (run id, correlation id)."""
    run = JobRun(job=JOB, run_key=day.isoformat(), triggered_by=triggered_by)
    session.add(run)
    session.flush()
    return run.id, run.correlation_id


def finish_run(
    session: Session,
    run_id: uuid.UUID,
    stats: dict[str, Any],
    error: str | None,
    finished_at: datetime,
) -> None:
    """Close the run: its figures, Failed with ``error`` or Finished."""
    run = session.get(JobRun, run_id)
    assert run is not None
    run.stats = stats
    run.status = str(RunStatus.FAILED if error else RunStatus.FINISHED)
    run.error = error
    run.finished_at = finished_at


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
