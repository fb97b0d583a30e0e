"""Sending the outbox through the real twilio SDK to the carrier simulator."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.config import get_settings
from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import AuditLog
from app.months import Month
from app.notifications.outbox import prepare_month
from app.notifications.reconcile import reconcile_outbox, requeue_after_seconds
from app.notifications.sending import Sender
from app.notifications.window import SendWindow
from app.ratelimit import LocalRateLimiter
from tests.support.carrier import MONTH, client_for, outbox, qualified_customers
from tests.support.factories import create_customer, create_notification, create_qualification


def _prepare() -> list[uuid.UUID]:
    with session_scope() as s:
        return prepare_month(s, Month.of(MONTH)).batches


def _one_row(session: Session, phone: str) -> uuid.UUID:
    customer = create_customer(session, phone_number=phone, phone_status="MOBILE")
    qualification = create_qualification(session, customer, qualification_month=MONTH)
    batch = uuid.uuid4()
    create_notification(session, qualification, phone_number=phone, batch_id=batch)
    session.commit()
    return batch


def test_every_qualified_customer_gets_exactly_one_message(
    session: Session, sms_env: SimulatorThread
) -> None:
    phones = qualified_customers(session, 12)
    sender = Sender(client_for(sms_env))
    for batch in _prepare():
        outcome = sender.send_batch(session_scope, batch)
        assert outcome.defer_seconds is None
    rows = outbox(session)
    assert {r.submission_status for r in rows} == {"Submitted"}
    assert all(r.carrier_reference_id and r.carrier_reference_id.startswith("SM") for r in rows)
    assert all(r.submission_timestamp and r.claimed_at for r in rows)
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}
    # Sending again finds nothing to do.
    assert (
        sum(
            sender.send_batch(session_scope, b).submitted
            for b in {r.batch_id for r in rows if r.batch_id}
        )
        == 0
    )
    assert sum(sms_env.state.per_recipient().values()) == 12
    # Status changes are audited (Queued -> Sending -> Submitted) without personal data.
    updates = session.scalars(
        select(AuditLog).where(
            AuditLog.entity_type == "Notification", AuditLog.operation == "UPDATE"
        )
    ).all()
    assert {a.new_values["submission_status"] for a in updates} == {"Sending", "Submitted"}
    assert all("phone_number" not in a.new_values for a in updates)


def test_permanent_error_fails_the_row_and_is_never_retried(
    session: Session, sms_env: SimulatorThread
) -> None:
    batch = _one_row(session, "+15005550004")  # unsubscribed at the carrier: 21610
    sender = Sender(client_for(sms_env))
    outcome = sender.send_batch(session_scope, batch)
    assert (outcome.failed, outcome.defer_seconds) == (1, None)
    [row] = outbox(session)
    assert (row.submission_status, row.error_code, row.retry_count) == ("Failed", "21610", 0)
    assert sender.send_batch(session_scope, batch).failed == 0  # nothing left to try
    assert sms_env.state.requests.get("21610") == 1


def test_transient_error_requeues_with_backoff_then_sends(
    session: Session, sms_env: SimulatorThread
) -> None:
    phones = qualified_customers(session, 3)
    [batch] = _prepare()
    sms_env.state.config.update({"rate_429": 1.0})
    sender = Sender(client_for(sms_env))
    outcome = sender.send_batch(session_scope, batch)
    assert outcome.requeued == 1 and outcome.defer_seconds is not None and outcome.defer_seconds > 0
    rows = outbox(session)
    assert {r.submission_status for r in rows} == {"Queued"}
    assert sorted(r.retry_count or 0 for r in rows) == [0, 0, 1]  # only the attempted one
    assert [r.error_code for r in rows if r.retry_count] == ["20429"]
    sms_env.state.config.update({"rate_429": 0.0})
    assert sender.send_batch(session_scope, batch).submitted == 3
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


def test_transient_errors_exhausted_fail_the_row(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_MAX_TRANSIENT_RETRIES", "0")
    get_settings.cache_clear()
    batch = _one_row(session, "+972501230000")
    sms_env.state.config.update({"rate_429": 1.0})
    Sender(client_for(sms_env)).send_batch(session_scope, batch)
    [row] = outbox(session)
    assert (row.submission_status, row.status_reason) == ("Failed", "TRANSIENT_RETRIES_EXHAUSTED")


def test_accept_then_timeout_is_resolved_by_asking_the_carrier(
    session: Session, sms_env: SimulatorThread
) -> None:
    phones = qualified_customers(session, 2)
    [batch] = _prepare()
    sms_env.state.config.update({"accept_timeout_rate": 1.0, "accept_timeout_delay": 1.0})
    outcome = Sender(client_for(sms_env, timeout=0.3)).send_batch(session_scope, batch)
    assert outcome.submitted == 2 and outcome.unresolved == 0
    rows = outbox(session)
    stored = {m.to: sid for sid, m in sms_env.state.messages.items()}
    assert {r.carrier_reference_id for r in rows} == set(stored.values())
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


def test_ambiguous_500_waits_for_the_reconciler_then_resends_once(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    [phone] = qualified_customers(session, 1)
    [batch] = _prepare()
    sms_env.state.config.update({"rate_500": 1.0})
    sender = Sender(client_for(sms_env))
    assert sender.send_batch(session_scope, batch).unresolved == 1
    [row] = outbox(session)
    # Twilio's 500 carries an integer code (20500), as the simulator's now does (issue 19).
    assert (row.submission_status, row.error_code, row.status_reason) == (
        "Sending", "20500", "AMBIGUOUS",
    )  # fmt: skip
    # The reconciler leaves it alone until the safe delay has passed ...
    client = client_for(sms_env)
    assert reconcile_outbox(session_scope, client).requeued == 0
    # ... looks it up once it is old enough, finds nothing, and still waits: "not listed"
    # is not "not sent" before the validity period and the list-lag margin are over ...
    later = row.claimed_at + timedelta(seconds=get_settings().sms_reconcile_sending_after_seconds)
    result = reconcile_outbox(session_scope, client, now=later + timedelta(seconds=1))
    assert (result.requeued, result.waiting) == (0, 1)
    # ... then finds nothing at the carrier and puts it back in the queue.
    monkeypatch.setenv("SMS_RECONCILE_SENDING_AFTER_SECONDS", "0")
    get_settings.cache_clear()
    safe = row.claimed_at + timedelta(seconds=requeue_after_seconds(get_settings()) + 1)
    result = reconcile_outbox(session_scope, client, now=safe)
    assert (result.requeued, result.batches) == (1, {batch})
    [row] = outbox(session)
    assert (row.submission_status, row.status_reason, row.retry_count) == (
        "Queued", "RECONCILED_NOT_FOUND", 1,
    )  # fmt: skip
    sms_env.state.config.update({"rate_500": 0.0})
    assert Sender(client).send_batch(session_scope, batch).submitted == 1
    assert sms_env.state.per_recipient() == {phone: 1}


def test_nothing_is_sent_outside_the_window(session: Session, sms_env: SimulatorThread) -> None:
    qualified_customers(session, 2)
    [batch] = _prepare()
    window = SendWindow.from_settings(
        get_settings().model_copy(
            update={"sms_send_window": "sun-thu 09:00-20:00; fri 09:00-13:00"}
        )
    )
    saturday_noon_utc = datetime(2026, 10, 3, 9, 0)  # 12:00 in Jerusalem, a Saturday
    sender = Sender(client_for(sms_env), window=window, clock=lambda: saturday_noon_utc)
    outcome = sender.send_batch(session_scope, batch)
    assert outcome.window_closed and outcome.defer_seconds is not None
    # Opens Sunday 09:00 local = 06:00 UTC: 21 hours later.
    assert outcome.defer_seconds == pytest.approx(21 * 3600)
    assert {r.submission_status for r in outbox(session)} == {"Queued"}
    assert sms_env.state.per_recipient() == {}


def test_run_notifications_command_sends_the_month(
    session: Session, sms_env: SimulatorThread
) -> None:
    phones = qualified_customers(session, 4)
    result = CliRunner().invoke(
        cli, ["run", "notifications", "--month", "2026-10", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    assert '"submitted": 4' in result.output
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


def test_dramatiq_actors_prepare_and_send(session: Session, sms_env: SimulatorThread) -> None:
    from dramatiq import Worker

    from worker.actors.notifications import prepare_month as prepare_actor
    from worker.tasks import broker

    phones = qualified_customers(session, 5)
    broker.flush_all()
    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        prepare_actor.send("2026-10")
        broker.join("outbox", timeout=20_000)
        broker.join("sms", timeout=20_000)
        worker.join()
    finally:
        worker.stop()
    assert {r.submission_status for r in outbox(session)} == {"Submitted"}
    assert sms_env.state.per_recipient() == {p: 1 for p in phones}


class _CountingLimiter:
    """A real in-process limiter that also counts grants and refusals."""

    def __init__(self, limit: float, window: float) -> None:
        self.inner = LocalRateLimiter(limit, window)
        self.granted = 0
        self.refused = 0

    def try_acquire(self, units: int = 1) -> float:
        wait = self.inner.try_acquire(units)
        if wait > 0:
            self.refused += 1
        else:
            self.granted += units
        return wait


def test_reconciler_lookups_wait_for_the_carrier_read_limiter(
    session: Session, sms_env: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    qualified_customers(session, 3)
    [batch] = _prepare()
    sms_env.state.config.update({"rate_500": 1.0})
    assert Sender(client_for(sms_env)).send_batch(session_scope, batch).unresolved == 3
    monkeypatch.setenv("SMS_RECONCILE_SENDING_AFTER_SECONDS", "0")
    get_settings.cache_clear()
    reads = _CountingLimiter(limit=2, window=0.3)
    client = client_for(sms_env)
    granted_at_lookup: list[int] = []
    find_sent = client.find_sent

    def counted(*args: Any) -> Any:
        granted_at_lookup.append(reads.granted)
        return find_sent(*args)

    monkeypatch.setattr(client, "find_sent", counted)
    result = reconcile_outbox(session_scope, client, reads=reads)
    # Three rows looked up, each lookup only after the limiter granted it; the third waited.
    assert result.waiting == 3
    assert granted_at_lookup == [1, 2, 3]
    assert reads.refused >= 1
