"""Exactly one SMS per qualified customer when the sending worker is killed at every step.

Each case starts a real worker process (multiprocessing, spawn) that runs the
``notifications.send_batch`` actor with ``PN_FAULT_POINT`` set and the crash tooling
(``app.devtools.faults``) imported, as a ``dramatiq`` worker would load it as an extra
module: the process SIGKILLs itself at that step. Recovery is what production does: the
reconciler (its safe delays set to zero) resolves rows stuck in Sending by asking the
carrier, then the batch is sent again. The simulator must have received exactly one
message per customer.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import uuid

import pytest
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.session import session_scope
from app.devtools import faults
from app.devtools.faults import FAULT_POINTS
from app.devtools.simulators.carrier import SimulatorThread
from app.months import Month
from app.notifications.outbox import prepare_month
from app.notifications.reconcile import reconcile_outbox
from app.notifications.repository import queued_batches
from app.notifications.sending import Sender
from tests.support.carrier import MONTH, client_for, outbox, qualified_customers


def _worker(batch_id: str, fault: str) -> None:
    """Body of the killed worker process (spawned: a fresh interpreter)."""
    os.environ["PN_FAULT_POINT"] = fault
    # This module imported the tooling before the variable was set: install it now, as
    # its import does in a worker started with PN_FAULT_POINT already in the environment.
    faults.install()
    from worker.actors.notifications import send_batch

    send_batch.fn(batch_id)


def _run_killed_worker(batch: uuid.UUID, fault: str) -> int | None:
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_worker, args=(str(batch), fault))
    process.start()
    process.join(60)
    return process.exitcode


def _recover(sim: SimulatorThread) -> None:
    client = client_for(sim)
    result = reconcile_outbox(session_scope, client)
    with session_scope() as s:
        batches = set(queued_batches(s)) | result.batches
    sender = Sender(client)
    for batch in batches:
        assert sender.send_batch(session_scope, batch).defer_seconds is None


@pytest.mark.parametrize("fault", FAULT_POINTS)
def test_killed_worker_never_loses_or_duplicates_a_message(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    phones = qualified_customers(session, 4)
    with session_scope() as s:
        [batch] = prepare_month(s, Month.of(MONTH)).batches

    assert _run_killed_worker(batch, fault) == -signal.SIGKILL
    states = sorted(r.submission_status or "" for r in outbox(session))
    expected_after_kill = {
        "before_claim": ["Queued"] * 4,
        "after_claim": ["Sending"] * 4,
        "after_carrier_accept": ["Sending"] * 4,  # one of them is already at the carrier
        "before_commit": ["Sending"] * 4,  # all four are at the carrier
    }
    assert states == expected_after_kill[fault]
    accepted_before_recovery = sum(sms_env.state.per_recipient().values())

    monkeypatch.setenv("SMS_RECONCILE_SENDING_AFTER_SECONDS", "0")
    monkeypatch.setenv("SMS_RECONCILE_QUEUED_AFTER_SECONDS", "0")
    get_settings.cache_clear()
    _recover(sms_env)

    rows = outbox(session)
    assert {r.submission_status for r in rows} == {"Submitted"}
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}
    stored = {sid for sid in sms_env.state.messages}
    assert {r.carrier_reference_id for r in rows} == stored
    # The messages accepted before the kill were recognised, not resent.
    found = sum(1 for r in rows if r.status_reason is None and (r.retry_count or 0) == 0)
    assert found >= accepted_before_recovery


def test_carrier_accepts_then_times_out_and_the_worker_dies(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The carrier keeps the message but answers late; the worker is killed before it
    could ask the carrier: the reconciler finds the message and records its sid."""
    phones = qualified_customers(session, 2)
    with session_scope() as s:
        [batch] = prepare_month(s, Month.of(MONTH)).batches
    sms_env.state.config.update({"accept_timeout_rate": 1.0, "accept_timeout_delay": 3.0})
    monkeypatch.setenv("TWILIO_TIMEOUT_SECONDS", "0.3")
    # Killed right after the claim of the first chunk would not reach the carrier; kill
    # it instead at the record step, after both creates timed out and were looked up.
    assert _run_killed_worker(batch, "before_commit") == -signal.SIGKILL
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}
    sms_env.state.config.update({"accept_timeout_rate": 0.0})
    monkeypatch.setenv("SMS_RECONCILE_SENDING_AFTER_SECONDS", "0")
    get_settings.cache_clear()
    _recover(sms_env)
    assert {r.submission_status for r in outbox(session)} == {"Submitted"}
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}
