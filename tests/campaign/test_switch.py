"""The kill switch: ``sms pause`` stops every sender within seconds with nothing lost
(audited, shown by ``status``); ``sms resume`` finishes the wave, each message once."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.campaign import switch
from app.campaign.controls import SendControls
from app.cli.main import cli
from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import AuditLog, SystemEvent
from app.notifications.carrier import CarrierClient, CarrierMessage
from app.notifications.reconcile import reconcile_outbox
from app.notifications.sending import Sender, utcnow
from tests.campaign.conftest import OCT, customers, outbox_of, prepare
from tests.support.carrier import client_for

runner = CliRunner()


def _set(paused: bool) -> None:
    with session_scope() as s:
        switch.set_paused(s, paused, changed_by="test")


def _events(session: Session, kind: str) -> list[SystemEvent]:
    session.expire_all()
    return list(session.scalars(select(SystemEvent).where(SystemEvent.event_type == kind)))


def _phones(n: int, prefix: str = "+97250222") -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


def test_pause_and_resume_are_audited_and_shown_by_status(session: Session) -> None:
    result = runner.invoke(cli, ["sms", "pause", "--reason", "wrong template"])
    assert result.exit_code == 0 and "paused" in result.output, result.output
    status = runner.invoke(cli, ["status", "--check", "--format", "json"])
    assert status.exit_code == 4  # a paused wave needs attention
    payload = json.loads(status.output)
    sms = payload["sms"]
    assert (sms["paused"], sms["source"], sms["reason"]) == (True, "operator", "wrong template")
    assert "sms: sending paused (premium-notify sms resume)" in payload["attention"]
    table = runner.invoke(cli, ["status"])
    assert "SMS sending: PAUSED since" in table.output and "why: wrong template" in table.output
    assert all(len(line) <= 80 for line in table.output.splitlines())
    again = runner.invoke(cli, ["sms", "pause"])
    assert again.exit_code == 0 and "already paused" in again.output

    assert runner.invoke(cli, ["sms", "resume"]).exit_code == 0
    status = runner.invoke(cli, ["status", "--check", "--format", "json"])
    assert status.exit_code == 0 and json.loads(status.output)["sms"]["paused"] is False
    assert "SMS sending: on" in runner.invoke(cli, ["status"]).output

    audits = session.scalars(
        select(AuditLog).where(AuditLog.entity_type == "SmsControl").order_by(AuditLog.timestamp)
    ).all()
    changes = [(a.operation, a.new_values["paused"]) for a in audits]
    assert changes == [("INSERT", True), ("UPDATE", False)]
    assert all((a.user_id or "").startswith("cli") for a in audits)
    assert audits[1].old_values is not None and audits[1].old_values["paused"] is True
    [paused] = _events(session, "sms_paused")
    assert paused.severity == "WARNING" and paused.event_data["reason"] == "wrong template"
    assert len(_events(session, "sms_resumed")) == 1


def test_a_paused_sender_claims_nothing_and_resume_sends_each_once(
    session: Session, sms_env: SimulatorThread, fast_switch: None
) -> None:
    phones = _phones(5)
    customers(session, *phones)
    [batch] = prepare(OCT).batches
    _set(True)
    sender = Sender(client_for(sms_env))
    outcome = sender.send_batch(session_scope, batch)
    assert (outcome.paused, outcome.defer_seconds, outcome.submitted) == (True, 0.2, 0)
    assert {n.submission_status for n in outbox_of(session, OCT).values()} == {"Queued"}
    assert sms_env.state.per_recipient() == {}
    _set(False)
    assert sender.send_batch(session_scope, batch).submitted == 5
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


class _PausingCarrier(CarrierClient):
    """Pauses sending (another transaction, as an operator would) after ``after`` creates."""

    after = 2

    def send(self, to: str, body: str, **kwargs: Any) -> CarrierMessage:
        sent = super().send(to, body, **kwargs)
        self.after -= 1
        if self.after == 0:
            _set(True)
        return sent


def test_a_pause_mid_chunk_gives_the_rest_back_to_the_queue(
    session: Session, sms_env: SimulatorThread, fast_switch: None
) -> None:
    phones = _phones(6, "+97250333")
    customers(session, *phones)
    [batch] = prepare(OCT).batches
    carrier = _PausingCarrier(client_for(sms_env).client.username, "test-token",
                              sender="+15005550006", base_url=sms_env.base_url)  # fmt: skip
    outcome = Sender(carrier).send_batch(session_scope, batch)
    assert (outcome.paused, outcome.submitted) == (True, 2)
    rows = list(outbox_of(session, OCT).values())
    assert sorted(r.submission_status or "" for r in rows) == ["Queued"] * 4 + ["Submitted"] * 2
    assert all(r.retry_count == 0 and r.claimed_at is None for r in rows if r.submission_status
               == "Queued")  # fmt: skip
    _set(False)
    assert Sender(client_for(sms_env)).send_batch(session_scope, batch).submitted == 4
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


def test_the_send_actor_defers_itself_while_paused(
    session: Session, sms_env: SimulatorThread, fast_switch: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from worker.actors import notifications as actors

    customers(session, *_phones(2, "+97250444"))
    [batch] = prepare(OCT).batches
    deferred: list[tuple[float, str]] = []
    monkeypatch.setattr(actors, "enqueue_in", lambda delay, _a, arg: deferred.append((delay, arg)))
    _set(True)
    actors.send_batch.fn(str(batch))
    assert deferred == [(0.2, str(batch))]
    assert {n.submission_status for n in outbox_of(session, OCT).values()} == {"Queued"}
    _set(False)
    actors.send_batch.fn(str(batch))
    assert len(deferred) == 1
    assert {n.submission_status for n in outbox_of(session, OCT).values()} == {"Submitted"}


def test_the_reconciler_does_not_requeue_paused_batches(
    session: Session, sms_env: SimulatorThread
) -> None:
    customers(session, *_phones(2, "+97250555"))
    [batch] = prepare(OCT).batches
    session.execute(text("UPDATE notifications SET updated_at = updated_at - interval '1 day'"))
    session.commit()
    later = utcnow() + timedelta(minutes=1)
    _set(True)
    result = reconcile_outbox(session_scope, client_for(sms_env), now=later)
    assert result.batches == set()
    _set(False)
    assert reconcile_outbox(session_scope, client_for(sms_env), now=later).batches == {batch}


def test_one_controls_object_serves_a_process(session: Session, fast_switch: None) -> None:
    controls = SendControls()
    assert controls.paused_for(session_scope) is None
    _set(True)
    assert controls.paused_for(session_scope) == 0.2
    assert controls.before_claim(session, uuid.uuid4()) == 0
