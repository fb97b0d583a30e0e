"""Run leases: no ``job_runs`` row stays ``Running`` for ever.

A run holds a lease while it works: ``Heartbeat`` renews ``lease_expires_at`` every
``BEAT_SECONDS`` from a thread of its own (one short transaction per beat), so a long
step (a month's qualification statement, a slow carrier) keeps it alive. A process that
dies stops renewing: once ``lease_expires_at`` has passed, the run is stale.
``premium-notify status`` shows it as such (and ``status --check`` fails), and the next
run of the job takes it over (``take_over_stale``: the dead run becomes Failed, naming
the run that took over, and the new run redoes what the dead one left undone; every
stage is idempotent). A run that never renewed (started before leases existed) counts
from its ``started_at``.

SQL on ``job_runs`` only; the caller of ``take_over_stale`` owns the transaction.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from types import TracebackType

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.session import SessionScope

log = logging.getLogger(__name__)

LEASE_SECONDS = 600  # no sign of life for this long: the run's process is taken as dead
BEAT_SECONDS = 60  # renewals per lease: ten, so a few failed beats never lose it

# SQL condition of a stale run (``r`` is job_runs); :lease is LEASE_SECONDS.
STALE = (
    "r.status = 'Running' AND COALESCE(r.lease_expires_at, "
    "r.started_at + make_interval(secs => :lease)) < LOCALTIMESTAMP"
)

_RENEW = text(
    """
    UPDATE job_runs
    SET heartbeat_at = LOCALTIMESTAMP,
        lease_expires_at = LOCALTIMESTAMP + make_interval(secs => :lease),
        lease_owner = :owner
    WHERE id = :run AND status = 'Running'
    """
)

_TAKE_OVER = text(
    f"""
    UPDATE job_runs r
    SET status = 'Failed', finished_at = LOCALTIMESTAMP,
        error = 'stale: no heartbeat since '
                || to_char(COALESCE(r.heartbeat_at, r.started_at), 'YYYY-MM-DD HH24:MI:SS')
                || ' UTC (its process died); taken over by run ' || :by
    WHERE r.job = :job AND (CAST(:key AS text) IS NULL OR r.run_key = :key)
      AND r.id <> CAST(:by AS uuid) AND {STALE}
    RETURNING r.id
    """
)


def owner() -> str:
    """Who holds a lease: host and process id (shown by ``status``)."""
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def renew(session: Session, run_id: uuid.UUID, lease_seconds: int = LEASE_SECONDS) -> bool:
    """Extend the run's lease; False when the run is no longer Running."""
    result = session.execute(_RENEW, {"run": run_id, "lease": lease_seconds, "owner": owner()})
    return bool(getattr(result, "rowcount", 0))


def take_over_stale(
    session: Session,
    job: str,
    by: uuid.UUID,
    *,
    run_key: str | None = None,
    lease_seconds: int = LEASE_SECONDS,
) -> list[uuid.UUID]:
    """Mark the stale runs of ``job`` (of ``run_key`` only, when given) Failed, taken over
    by run ``by``; returns their ids."""
    rows = session.execute(
        _TAKE_OVER, {"job": job, "key": run_key, "by": str(by), "lease": lease_seconds}
    )
    taken = [row[0] for row in rows]
    if taken:
        log.warning("run %s took over %d stale %s run(s)", by, len(taken), job)
    return taken


class Heartbeat:
    """Renew a run's lease while the ``with`` block runs (at entry, then every beat).

    A failed beat (the database briefly away) is logged and retried at the next one; the
    lease is long enough to survive several.
    """

    def __init__(
        self,
        scope: SessionScope,
        run_id: uuid.UUID,
        *,
        lease_seconds: int = LEASE_SECONDS,
        beat_seconds: float = BEAT_SECONDS,
    ) -> None:
        self.scope = scope
        self.run_id = run_id
        self.lease_seconds = lease_seconds
        self.beat_seconds = beat_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        try:
            with self.scope() as session:
                renew(session, self.run_id, self.lease_seconds)
        except Exception as exc:  # noqa: BLE001 - a missed beat must not fail the run
            log.warning("run %s: lease not renewed (%s)", self.run_id, type(exc).__name__)

    def _loop(self) -> None:
        while not self._stop.wait(self.beat_seconds):
            self.beat()

    def start(self) -> Heartbeat:
        """Renew now, then every beat until ``stop``."""
        self.beat()
        self._thread = threading.Thread(
            target=self._loop, name=f"heartbeat-{self.run_id}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
