"""Sending the outbox exactly once (docs/design.md decision 2).

For each chunk of a batch:

1. **claim** Queued -> Sending (``claimed_at``) in its own committed transaction, so a
   crash after this point leaves evidence that a carrier call may have happened;
2. release the database connection (the session is closed: a slow carrier must not
   hold pool connections), wait for the cross-worker rate limiter, call the carrier;
3. **record** the outcome (sid + 'Submitted' + ``submission_timestamp``, 'Failed' with
   the code, or back to 'Queued' for a transient error) in one statement, guarded by
   ``submission_status = 'Sending' AND claimed_at = <our claim>``.

Every create carries the notification's own status-callback URL and a ValidityPeriod
(docs/design.md decision 11). Ambiguous outcomes (5xx, read timeout) are resolved by
asking the carrier for a message with this body to this number since the claim; if none
is found the row stays in 'Sending' until the message's first callback settles it, or
the reconciler does (a lookup, or after the validity period and a list-lag margin, back
to the queue). A transient refusal (429, 21611, connection refused) stops the batch and asks
the caller to come back after a backoff; rows claimed but not attempted are released.

Before each claim and each carrier call the sender asks the campaign controls
(``app.campaign.controls``): while the kill switch is on, the batch asks to come back
later and unattempted rows go back to 'Queued'; 21610 refusals record the customer's
opt-out and every chunk's answers feed the circuit breaker.

Every send runs in transactions of the ``SessionScope`` it is handed (the claim, the
renewal of an old claim, the record of a chunk's outcomes each commit on their own), so
the caller at the top passes ``app.db.session.session_scope`` rather than a session.

``checkpoint(name)`` is called at the named steps of ``CHECKPOINTS``; it does nothing in
production. The crash tests replace it (``app.devtools.faults``, PN_FAULT_POINT) to kill
the process there.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.callbacks.urls import status_callback_url
from app.campaign.controls import SendControls
from app.config import Settings, get_settings
from app.db.session import SessionScope
from app.models.enums import SubmissionStatus
from app.notifications.carrier import (
    AmbiguousCarrierError,
    CarrierClient,
    CarrierError,
    PermanentCarrierError,
    TransientCarrierError,
)
from app.notifications.repository import (
    Claimed,
    claim_chunk,
    record_outcomes,
    renew_claim,
    submitted_sids,
)
from app.notifications.window import SendWindow
from app.observability.events import record_event
from app.observability.metrics import RATE_LIMIT_WAITS, SMS_SEGMENTS, SMS_SUBMISSIONS
from app.ratelimit import RateLimiter

log = logging.getLogger(__name__)

# The steps of a send where a worker may die: each leaves different evidence behind (a
# Queued row, a claimed row, a message at the carrier but not recorded, ...).
CHECKPOINTS = ("before_claim", "after_claim", "after_carrier_accept", "before_commit")


def _pass(name: str) -> None:
    """Production's checkpoint: nothing happens at a step."""


# Looked up at every step (a module global, not bound at import), so a tool imported
# later can replace it: app.devtools.faults does, for the crash tests.
checkpoint: Callable[[str], None] = _pass


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class BatchOutcome:
    submitted: int = 0
    failed: int = 0
    requeued: int = 0
    unresolved: int = 0  # ambiguous, left in Sending for the reconciler
    conflicts: int = 0  # outcome not recorded: the row had changed (see record())
    segments: int = 0
    defer_seconds: float | None = None  # come back after this long (None: batch done)
    window_closed: bool = False
    paused: bool = False  # the kill switch is on (app.campaign): rows stay Queued

    def add(self, other: BatchOutcome) -> None:
        for name in ("submitted", "failed", "requeued", "unresolved", "conflicts", "segments"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class SendResult:
    claimed: Claimed
    status: SubmissionStatus
    sid: str | None = None
    error_code: str | None = None
    reason: str | None = None
    retry_increment: int = 0
    submitted_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.claimed.id),
            "claimed_at": self.claimed.claimed_at.isoformat(),
            "status": str(self.status),
            "sid": self.sid,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "error_code": self.error_code,
            "reason": self.reason,
            "inc": self.retry_increment,
        }


# --- recording outcomes ---------------------------------------------------------------


def record(session: Session, results: list[SendResult]) -> int:
    """Write the outcomes; returns how many rows had changed under us (not written).

    A row already 'Submitted' with the sid of our outcome (or our outcome has none: the
    send was ambiguous, or the reconciler found nothing yet) was settled first by the
    message's status callback: that is our outcome recorded, not a conflict. Any other
    row no longer in 'Sending' with our claim time was resolved by the reconciler
    meanwhile (which waits far longer than a carrier timeout, so this means a stalled
    worker): the event names the rows so an operator can check for a duplicate.
    """
    if not results:
        return 0
    written = record_outcomes(session, json.dumps([r.as_json() for r in results]))
    missed = [r for r in results if r.claimed.id not in written]
    settled = submitted_sids(session, [r.claimed.id for r in missed])
    lost = [r for r in missed if not _settled_alike(r, settled.get(r.claimed.id))]
    if lost:
        record_event(
            session,
            "notification_record_conflict",
            f"{len(lost)} send outcomes not recorded: the rows changed while in flight",
            data={"notification_ids": [str(r.claimed.id) for r in lost],
                  "carrier_sids": [r.sid for r in lost]},
        )  # fmt: skip
    return len(lost)


def _settled_alike(result: SendResult, sid_now: str | None) -> bool:
    """The row is Submitted with a sid that agrees with our outcome (see ``record``)."""
    return sid_now is not None and result.sid in (None, sid_now)


class Sender:
    """Sends batches of the outbox through one carrier client."""

    def __init__(
        self,
        carrier: CarrierClient,
        limiter: RateLimiter | None = None,
        window: SendWindow | None = None,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
        controls: SendControls | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.carrier = carrier
        # The kill switch, the circuit breaker and 21610 opt-outs (app.campaign); workers
        # pass one per process, shared by its sender threads.
        self.controls = controls or SendControls(self.settings)
        self.limiter = limiter
        self.window = window or SendWindow.from_settings(self.settings)
        self.clock = clock
        self._warm = False

    def send_batch(self, scope: SessionScope, batch_id: uuid.UUID) -> BatchOutcome:
        """Send what is Queued in the batch, chunk by chunk, until done or deferred.

        Opens its own transactions from ``scope`` (the claim of a chunk, the record of its
        outcomes: the connection goes back to the pool during the carrier calls).
        """
        deadline = time.monotonic() + self.settings.sms_batch_time_budget_seconds
        outcome = BatchOutcome()
        while True:
            now = self.clock()
            if not self.window.is_open(now):
                outcome.window_closed = True
                outcome.defer_seconds = self.window.seconds_until_open(now)
                return outcome
            if time.monotonic() >= deadline:
                outcome.defer_seconds = 0.0
                return outcome
            if (pause := self.controls.paused_for(scope)) is not None:
                outcome.paused, outcome.defer_seconds = True, pause
                return outcome
            checkpoint("before_claim")
            with scope() as session:
                self.controls.before_claim(session, batch_id)
                claimed = claim_chunk(session, batch_id, self.settings.sms_claim_chunk)
            if not claimed:
                return outcome
            checkpoint("after_claim")
            if not self._warm and self.limiter is not None:
                self.carrier.warm_up()
                self._warm = True
            results, chunk = self._send_chunk(scope, claimed, deadline)
            with scope() as session:
                chunk.conflicts += record(session, results)
                self.controls.after_chunk(
                    session, [(r.claimed.id, r.status, r.error_code, r.reason) for r in results]
                )
                checkpoint("before_commit")
            outcome.add(chunk)
            if chunk.defer_seconds is not None:
                outcome.defer_seconds = chunk.defer_seconds
                outcome.window_closed, outcome.paused = chunk.window_closed, chunk.paused
                return outcome

    def _send_chunk(
        self, scope: SessionScope, claimed: list[Claimed], deadline: float
    ) -> tuple[list[SendResult], BatchOutcome]:
        results: list[SendResult] = []
        outcome = BatchOutcome()
        for i, msg in enumerate(claimed):
            if not self.window.is_open(self.clock()):
                outcome.window_closed = True
                outcome.defer_seconds = self.window.seconds_until_open(self.clock())
            elif (pause := self.controls.paused_for(scope)) is not None:
                outcome.paused, outcome.defer_seconds = True, pause
            elif not self._wait_for_limiter(msg.segments, deadline):
                outcome.defer_seconds = 0.0
            if outcome.defer_seconds is not None:
                # Not attempted: back to the queue, no retry counted.
                results += [SendResult(m, SubmissionStatus.QUEUED) for m in claimed[i:]]
                break
            fresh = self._fresh_claim(scope, msg)
            if fresh is None:  # the reconciler took it back meanwhile: not ours to send
                outcome.conflicts += 1
                continue
            result = self._send_one(fresh)
            results.append(result)
            self._tally(outcome, result)
            if result.status is SubmissionStatus.QUEUED:  # transient: the carrier pushes back
                outcome.defer_seconds = _backoff(msg.retry_count)
                results += [SendResult(m, SubmissionStatus.QUEUED) for m in claimed[i + 1 :]]
                break
        return results, outcome

    def _fresh_claim(self, scope: SessionScope, msg: Claimed) -> Claimed | None:
        """The claim, renewed if it has aged past half the reconciler's delay; None if lost.

        Rows of a chunk wait their turn behind the rate limiter and the carrier's
        backoffs, possibly longer than SMS_RECONCILE_SENDING_AFTER_SECONDS. The
        reconciler would then find no message at the carrier, queue the row again, and
        another worker would send it while this one still does: a duplicate SMS (found
        by scripts/chaos.py). Renewing the claim before the call means every call starts
        at most half that delay after its claim and ends a carrier timeout later, well
        before the reconciler may touch the row; if the reconciler was first, the
        guarded UPDATE matches nothing and the row is skipped. The reconciler's requeue
        delay counts on this bound (``reconcile.requeue_after_seconds``).
        """
        half = self.settings.sms_reconcile_sending_after_seconds / 2
        if (utcnow() - msg.claimed_at).total_seconds() < half:
            return msg
        with scope() as session:
            renewed = renew_claim(session, msg)
        return None if renewed is None else replace(msg, claimed_at=renewed)

    def _send_one(self, msg: Claimed) -> SendResult:
        s = self.settings
        # The notification's own URL: even the first callback of a create whose answer
        # was lost names its row, and settles it (docs/callbacks.md).
        callback = (
            status_callback_url(s.callback_public_url, msg.id)
            if s.callback_public_url
            else s.sms_status_callback_url
        )
        try:
            sent = self.carrier.send(
                msg.phone_number,
                msg.body,
                status_callback=callback,
                validity_period=s.sms_validity_period_seconds,
            )
            checkpoint("after_carrier_accept")
            return SendResult(msg, SubmissionStatus.SUBMITTED, sid=sent.sid, submitted_at=utcnow())
        except PermanentCarrierError as exc:
            return SendResult(
                msg, SubmissionStatus.FAILED, error_code=exc.code_label, reason=str(exc)[:255]
            )
        except TransientCarrierError as exc:
            if msg.retry_count + 1 > s.sms_max_transient_retries:
                return SendResult(
                    msg,
                    SubmissionStatus.FAILED,
                    error_code=exc.code_label,
                    reason="TRANSIENT_RETRIES_EXHAUSTED",
                    retry_increment=1,
                )
            return SendResult(
                msg, SubmissionStatus.QUEUED, error_code=exc.code_label, retry_increment=1
            )
        except AmbiguousCarrierError as exc:
            found = self._find(msg)
            if found is not None:
                return SendResult(msg, SubmissionStatus.SUBMITTED, sid=found, submitted_at=utcnow())
            # Maybe accepted, maybe not: its first status callback settles it, or the
            # reconciler (a lookup; "not sent" only after the validity period and margin).
            return SendResult(
                msg, SubmissionStatus.SENDING, error_code=exc.code_label, reason="AMBIGUOUS"
            )

    def _find(self, msg: Claimed) -> str | None:
        try:
            found = self.carrier.find_sent(msg.phone_number, msg.body, msg.claimed_at)
        except CarrierError:
            return None
        return found.sid if found else None

    def _wait_for_limiter(self, segments: int, deadline: float) -> bool:
        if self.limiter is None:
            return True
        waited = False
        while True:
            wait = self.limiter.try_acquire(segments)
            if wait <= 0:
                return True
            if not waited:
                RATE_LIMIT_WAITS.labels("sms_segments").inc()
                waited = True
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)

    @staticmethod
    def _tally(outcome: BatchOutcome, result: SendResult) -> None:
        label = result.error_code or "none"
        SMS_SUBMISSIONS.labels(str(result.status), label).inc()
        if result.status is SubmissionStatus.SUBMITTED:
            outcome.submitted += 1
            outcome.segments += result.claimed.segments
            SMS_SEGMENTS.inc(result.claimed.segments)
        elif result.status is SubmissionStatus.FAILED:
            outcome.failed += 1
        elif result.status is SubmissionStatus.QUEUED:
            outcome.requeued += 1
        else:
            outcome.unresolved += 1


def _backoff(retry_count: int) -> float:
    return float(min(60.0, 2.0**retry_count) * random.uniform(0.8, 1.2))
