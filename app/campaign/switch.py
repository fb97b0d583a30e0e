"""The SMS kill switch: ``premium-notify sms pause|resume`` and the circuit breaker.

The database is its source of truth (``sms_controls``, audited on every change): a
Redis-only flag would be lost with a flushed broker, and a process-local one would not
reach the other workers. Senders read it through a ``PauseGate``, which asks the
database at most every SMS_PAUSE_CHECK_SECONDS (2 s): a pause reaches every worker
within that, plus the carrier call in flight. Paused rows stay 'Queued'; nothing is lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.campaign import repository as repo
from app.db.session import SessionScope
from app.models.enums import Severity
from app.observability.events import record_event
from app.observability.metrics import SMS_PAUSED

SENDING = "sending"  # the switch's name (sms_controls.name)
OPERATOR, BREAKER = "operator", "breaker"  # sources of a change


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class SwitchState:
    paused: bool
    reason: str | None = None
    source: str | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "reason": self.reason,
            "source": self.source,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at,
        }


def read(session: Session) -> SwitchState:
    """The switch as the database has it (never set: not paused)."""
    row = repo.read_switch(session, SENDING)
    if row is None:
        return SwitchState(False)
    return SwitchState(bool(row[0]), row[1], row[2], row[3], row[4])


def is_paused(session: Session) -> bool:
    """Whether sending is paused (read now; also refreshes the ``pn_sms_paused`` gauge)."""
    paused = read(session).paused
    SMS_PAUSED.set(1 if paused else 0)
    return paused


def set_paused(
    session: Session,
    paused: bool,
    *,
    changed_by: str,
    reason: str | None = None,
    source: str = OPERATOR,
    correlation_id: uuid.UUID | None = None,
    data: dict[str, object] | None = None,
) -> bool:
    """Pause or resume sending in the caller's transaction; False if it already was.

    The change is audited by the table's trigger (the caller sets the audit context: who)
    and raised as a system event (``sms_paused`` / ``sms_resumed``).
    """
    correlation_id = correlation_id or uuid.uuid4()
    changed = repo.set_switch(
        session, SENDING, paused=paused, reason=(reason or "")[:255] or None, source=source,
        changed_by=changed_by[:100], now=utcnow(), correlation_id=correlation_id,
    )  # fmt: skip
    if changed:
        word = "paused" if paused else "resumed"
        severity = Severity.CRITICAL if source == BREAKER else Severity.WARNING
        record_event(
            session, f"sms_{word}",
            f"SMS sending {word} by {source} ({changed_by})" + (f": {reason}" if reason else ""),
            severity=severity if paused else Severity.INFO, correlation_id=correlation_id,
            data={"source": source, "changed_by": changed_by, "reason": reason, **(data or {})},
        )  # fmt: skip
    return changed


class PauseGate:
    """The switch as one process sees it: re-read from the database at most every
    ``ttl`` seconds, shared by the process's sender threads."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._state: SwitchState | None = None
        self._read_at = 0.0
        self.on_resume: Callable[[], None] | None = None  # e.g. the breaker's reset

    def state(self, scope: SessionScope) -> SwitchState:
        """The switch, from the cache while it is fresh, else from the database."""
        with self._lock:
            if self._state is not None and self.clock() - self._read_at < self.ttl:
                return self._state
        with scope() as session:
            fresh = read(session)
        self.remember(fresh)
        return fresh

    def remember(self, state: SwitchState) -> None:
        """Take ``state`` as the switch's (read now, or just written by this process)."""
        with self._lock:
            resumed = self._state is not None and self._state.paused and not state.paused
            self._state, self._read_at = state, self.clock()
        SMS_PAUSED.set(1 if state.paused else 0)
        if resumed and self.on_resume is not None:
            self.on_resume()
