"""The circuit breaker: a burst of permanent refusals pauses sending by itself (system
event, ``pn_sms_breaker_trips_total`` for the alert); the rest of the wave stays Queued."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.campaign import switch
from app.campaign.breaker import Answer, CircuitBreaker
from app.config import get_settings
from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import SystemEvent
from app.notifications.sending import Sender
from tests.campaign.conftest import OCT, customers, outbox_of, prepare
from tests.support.carrier import client_for

OK = Answer(False, False, None)
REFUSED = Answer(True, True, "21612")
OPTED_OUT = Answer(True, True, "21610")
BUSY = Answer(False, True, "20429")
CANNOT_ROUTE = "+15005550002"  # the carrier simulator refuses it: 21612


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, **overrides: float) -> CircuitBreaker:
    options = {"window_seconds": 60.0, "min_answers": 10, "failure_rate": 0.5, **overrides}
    return CircuitBreaker(clock=clock, **options)  # type: ignore[arg-type]


def test_the_breaker_judges_a_window_of_enough_answers() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    assert breaker.observe([REFUSED] * 9) is None  # too few answers to judge
    trip = breaker.observe([OK])
    assert trip is not None and (trip.answers, trip.permanent) == (10, 9)
    assert trip.codes == {"21612": 9} and trip.permanent_rate == 0.9
    assert breaker.observe([REFUSED]) is None  # a trip starts a new window

    breaker.reset()
    assert breaker.observe([OK] * 6 + [REFUSED] * 4) is None  # 40 % < 50 %
    clock.now = 61.0  # those answers leave the window
    assert breaker.observe([REFUSED] * 5 + [OK] * 4) is None  # 9 answers only
    assert breaker.observe([REFUSED]) is not None  # 6 of 10


def test_opt_outs_and_transient_errors_are_not_carrier_refusals() -> None:
    clock = Clock()
    assert _breaker(clock).observe([OPTED_OUT] * 50) is None  # customers' choices
    assert _breaker(clock).observe([BUSY] * 50) is None  # error rate off by default
    trip = _breaker(clock, error_rate=0.8).observe([BUSY] * 50)
    assert trip is not None and trip.errors == 50 and trip.permanent == 0
    assert _breaker(clock, min_answers=0).observe([REFUSED] * 50) is None  # switched off


def test_a_burst_of_permanent_failures_pauses_sending_by_itself(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_BREAKER_MIN_ATTEMPTS", "6")
    monkeypatch.setenv("SMS_CLAIM_CHUNK", "3")
    get_settings.cache_clear()
    good = [f"+9725088800{i:02d}" for i in range(3)]
    # 9 of 12 refused: whatever the claim order, any 6 answers hold at least 3 refusals.
    customers(session, *[CANNOT_ROUTE] * 9, *good)
    [batch] = prepare(OCT).batches
    trips_before = REGISTRY.get_sample_value("pn_sms_breaker_trips_total") or 0.0

    outcome = Sender(client_for(sms_env)).send_batch(session_scope, batch)

    # Two chunks of 3 answered, then the breaker paused sending: the rest waits.
    assert outcome.paused and outcome.failed + outcome.submitted == 6 and outcome.failed >= 3
    states = [n.submission_status for n in outbox_of(session, OCT).values()]
    assert (states.count("Failed"), states.count("Queued")) == (outcome.failed, 6)
    assert sum(sms_env.state.per_recipient().values()) == outcome.submitted
    with session_scope() as s:
        state = switch.read(s)
    assert (state.paused, state.source, state.changed_by) == (True, "breaker", "circuit_breaker")
    [event] = session.scalars(select(SystemEvent).where(SystemEvent.event_type == "sms_paused"))
    assert event.severity == "CRITICAL" and event.event_data["source"] == "breaker"
    assert event.event_data["codes"] == {"21612": outcome.failed}
    assert (event.event_data["answers"], event.event_data["permanent"]) == (6, outcome.failed)
    assert REGISTRY.get_sample_value("pn_sms_breaker_trips_total") == trips_before + 1

    # Another worker, or this one later, finds the switch on and sends nothing.
    again = Sender(client_for(sms_env)).send_batch(session_scope, batch)
    assert (again.paused, again.failed, again.submitted) == (True, 0, 0)
    # An operator resumes: the rest of the wave goes, the refused numbers fail alone.
    with session_scope() as s:
        switch.set_paused(s, False, changed_by="test")
    monkeypatch.setenv("SMS_BREAKER_MIN_ATTEMPTS", "0")
    get_settings.cache_clear()
    Sender(client_for(sms_env)).send_batch(session_scope, batch)
    states = sorted(n.submission_status or "" for n in outbox_of(session, OCT).values())
    assert states == ["Failed"] * 9 + ["Submitted"] * 3
    assert sms_env.state.per_recipient() == {p: 1 for p in good}
