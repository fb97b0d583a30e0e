"""What a sender asks the campaign controls, chunk by chunk (``app.notifications.sending``).

* ``paused_for(scope)``: before claiming a chunk and before each carrier call — None to
  go on, else the seconds after which the batch should come back (the kill switch is
  on; rows not attempted go back to 'Queued', nothing is lost);
* ``before_claim(session, batch_id)``: customers who opted out since the month was
  prepared are skipped (OPTED_OUT) instead of claimed;
* ``after_chunk(session, outcomes)``: in the transaction recording a chunk's outcomes,
  21610 refusals opt their customers out, and the carrier's answers feed the circuit
  breaker, which may pause sending for every worker.

One ``SendControls`` per process (its breaker window and switch cache are shared by the
process's sender threads).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.campaign import repository as repo
from app.campaign import switch
from app.campaign.breaker import Answer, CircuitBreaker
from app.campaign.optouts import record_carrier_refusals
from app.config import Settings, get_settings
from app.db.session import SessionScope
from app.models.enums import SubmissionStatus
from app.observability.metrics import SMS_BREAKER_TRIPS

log = logging.getLogger(__name__)

BREAKER_USER = "circuit_breaker"
# (notification id, submission status, carrier error code, reason) of one send's outcome.
Outcome = tuple[uuid.UUID, str, str | None, str | None]
_NOT_ANSWERS = {"TRANSIENT_RETRIES_EXHAUSTED"}  # a verdict of ours, not the carrier's


def _answer(status: str, code: str | None, reason: str | None) -> Answer | None:
    """The carrier's answer in an outcome; None for a row given back unattempted."""
    if status == SubmissionStatus.SUBMITTED:
        return Answer(False, False, None)
    if status == SubmissionStatus.FAILED:
        permanent = reason not in _NOT_ANSWERS
        return Answer(permanent, True, code)
    if code is None:  # back to the queue without a carrier call (pause, window, limiter)
        return None
    return Answer(False, True, code)  # transient (Queued) or ambiguous (Sending)


class SendControls:
    """The kill switch, the circuit breaker and carrier opt-outs, for one process."""

    def __init__(
        self,
        settings: Settings | None = None,
        gate: switch.PauseGate | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        s = self.settings = settings or get_settings()
        self.gate = gate or switch.PauseGate(s.sms_pause_check_seconds)
        self.breaker = breaker or CircuitBreaker(
            window_seconds=s.sms_breaker_window_seconds,
            min_answers=s.sms_breaker_min_attempts,
            failure_rate=s.sms_breaker_failure_rate,
            error_rate=s.sms_breaker_error_rate,
        )
        # Answers from before a pause must not trip the breaker again after the resume.
        self.gate.on_resume = self.breaker.reset

    def paused_for(self, scope: SessionScope) -> float | None:
        """None while sending may go on; else seconds until the batch should look again."""
        if self.gate.state(scope).paused:
            return self.settings.sms_paused_recheck_seconds
        return None

    def before_claim(self, session: Session, batch_id: uuid.UUID) -> int:
        """Skip (OPTED_OUT) the batch's Queued rows whose customer opted out meanwhile."""
        return repo.skip_opted_out(session, batch_id)

    def after_chunk(self, session: Session, outcomes: Sequence[Outcome]) -> None:
        """Opt-outs from 21610 refusals; the breaker's verdict (in the caller's transaction)."""
        refused = [nid for nid, status, code, _ in outcomes
                   if status == SubmissionStatus.FAILED and code == "21610"]  # fmt: skip
        record_carrier_refusals(session, refused)
        answers = [a for _, s, c, r in outcomes if (a := _answer(s, c, r)) is not None]
        trip = self.breaker.observe(answers)
        if trip is None:
            return
        paused = switch.set_paused(
            session, True, changed_by=BREAKER_USER, reason=trip.describe(),
            source=switch.BREAKER, data=trip.as_dict(),
        )  # fmt: skip
        # This process stops at once; the others at their next read of the switch.
        self.gate.remember(switch.SwitchState(True, trip.describe(), switch.BREAKER, BREAKER_USER))
        if paused:
            SMS_BREAKER_TRIPS.inc()
            log.error("circuit breaker paused SMS sending: %s", trip.describe())
