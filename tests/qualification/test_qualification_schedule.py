"""The monthly kick and the run actor, with a real Dramatiq worker on a fresh StubBroker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.balances.gaps import GapRepairReport
from app.db.session import SessionScope
from app.models import JobRun, MonthlyQualification
from app.months import Month, closed_months
from app.qualification import schedule, service
from app.qualification.repository import runs
from tests.qualification.helpers import fill_month, qualify
from tests.support.factories import create_customer

TZ = ZoneInfo("Asia/Jerusalem")


def no_gaps(scope: SessionScope, start: date, end: date) -> GapRepairReport:
    """A real no-op gap repair: the test data has nothing the source could fill."""
    return GapRepairReport()


def test_closed_months_window_is_in_local_time() -> None:
    # 1 December 00:30 in Jerusalem is still 30 November in UTC: November is closed.
    now = datetime(2026, 11, 30, 22, 30, tzinfo=UTC)
    assert [str(m) for m in closed_months(TZ, 3, now)] == ["2026-09", "2026-10", "2026-11"]


def test_plan_catches_up_unfinished_months_and_unstarted_notifications(
    session: Session,
) -> None:
    now = datetime(2026, 12, 1, 6, 30, tzinfo=TZ)
    qualify("2026-09", gap_repair=None)  # finished, notifications never started
    qualify("2026-10", gap_repair=None)
    with Session(session.get_bind()) as s:
        runs.mark_notifications_started(s, Month.parse("2026-10"))
        s.add(JobRun(job=runs.OUTBOX_JOB, run_key="2026-10", triggered_by="t"))  # prepared
        failed = runs.start_run(s, Month.parse("2026-11"), triggered_by="t", recompute=False)
        runs.fail_run(s, failed.id, "boom")
        s.commit()
    plan = schedule.plan_kick(session, TZ, 4, now)
    assert [str(m) for m in plan.to_qualify] == ["2026-08", "2026-11"]
    assert [str(m) for m in plan.to_notify] == ["2026-09"]


@pytest.fixture
def stub_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubBroker]:
    """A fresh StubBroker with the project's middleware; the actors re-bound to it."""
    from worker import broker as broker_module
    from worker.actors import notifications as sms_actors
    from worker.actors import qualification as actors
    from worker.resources import Queue

    broker = StubBroker(middleware=broker_module.middleware())
    broker.emit_after("process_boot")
    for queue in Queue:
        broker.declare_queue(queue.value)
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    # prepare_month too: the run enqueues it (the SMS stage's actor) on its own broker.
    for actor in (actors.run_month, actors.monthly_kick, sms_actors.prepare_month):
        monkeypatch.setattr(actor, "broker", broker)
        broker.declare_actor(actor)
    # The gap repair belongs to the balances module; these tests give a real no-op one.
    monkeypatch.setattr(service, "default_gap_repair", no_gaps)
    yield broker
    broker.close()
    dramatiq.set_broker(previous)


def _sms_messages(broker: StubBroker) -> list[dramatiq.Message[Any]]:
    """The messages that start the SMS stage (on the 'outbox' queue)."""
    queue = broker.queues["outbox"]
    messages = []
    while not queue.empty():
        messages.append(dramatiq.Message.decode(queue.get_nowait()))
    return messages


def test_a_lost_prepare_message_is_handed_over_again(session: Session) -> None:
    """Found by the chaos run: the mark says 'enqueued', but a Redis FLUSHALL before a
    worker took the message leaves no outbox; the next kick must start the stage again."""
    now = datetime(2026, 11, 2, 6, 30, tzinfo=TZ)
    qualify("2026-10", gap_repair=None)
    with Session(session.get_bind()) as s:
        runs.mark_notifications_started(s, Month.parse("2026-10"))
        s.commit()
    plan = schedule.plan_kick(session, TZ, 1, now)
    assert [str(m) for m in plan.to_notify] == ["2026-10"]


def test_run_actor_qualifies_then_starts_the_notification_stage(
    session: Session, stub_broker: StubBroker
) -> None:
    from worker.actors.qualification import run_month as run_actor

    c = create_customer(session)
    fill_month(session, c, "2026-10")
    session.commit()
    worker = dramatiq.Worker(stub_broker, queues={"qualification"}, worker_timeout=100)
    worker.start()
    try:
        run_actor.send("2026-10")
        run_actor.send("2026-10")  # a duplicate delivery changes nothing
        stub_broker.join("qualification", fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    assert len(session.scalars(select(MonthlyQualification)).all()) == 1
    sent = _sms_messages(stub_broker)
    assert [(m.actor_name, m.args) for m in sent] == [
        ("notifications.prepare_month", ("2026-10",))
    ] * 2
    # Enqueued, not yet prepared: the kick hands the month over again until the outbox
    # exists (the broker may lose the prepare message).
    assert runs.months_notified(session, [Month.parse("2026-10")]) == set()
    session.add(JobRun(job=runs.OUTBOX_JOB, run_key="2026-10", triggered_by="t"))
    session.commit()
    assert runs.months_notified(session, [Month.parse("2026-10")]) == {"2026-10"}


def test_run_actor_does_not_retry_an_open_month(session: Session, stub_broker: StubBroker) -> None:
    from worker.actors.qualification import run_month as run_actor

    worker = dramatiq.Worker(stub_broker, queues={"qualification"}, worker_timeout=100)
    worker.start()
    try:
        run_actor.send("2099-01")
        stub_broker.join("qualification", fail_fast=True)
    finally:
        worker.stop()
    assert session.scalars(select(JobRun)).all() == []
    assert _sms_messages(stub_broker) == []


def test_kick_enqueues_missing_months_and_is_idempotent(
    session: Session, stub_broker: StubBroker
) -> None:
    from worker.actors.qualification import monthly_kick

    c = create_customer(session)
    last = closed_months(TZ, 1)[0]
    fill_month(session, c, str(last))
    session.commit()
    worker = dramatiq.Worker(stub_broker, queues={"qualification"}, worker_timeout=100)
    worker.start()
    try:
        monthly_kick.send()
        stub_broker.join("qualification", fail_fast=True)
        worker.join()
        first = _sms_messages(stub_broker)
        # The SMS stage prepared every outbox (its job_runs rows): all is done now, so
        # the second kick enqueues nothing.
        for month in closed_months(TZ, 3):
            session.add(JobRun(job=runs.OUTBOX_JOB, run_key=str(month), triggered_by="t"))
        session.commit()
        monthly_kick.send()
        stub_broker.join("qualification", fail_fast=True)
        worker.join()
        second = _sms_messages(stub_broker)
    finally:
        worker.stop()
    window = closed_months(TZ, 3)
    assert runs.finished_months(session, window) == {str(m) for m in window}
    assert sorted(m.args[0] for m in first) == sorted(str(m) for m in window)
    assert second == []
    assert session.scalars(select(MonthlyQualification.qualified)).all() == [True]


def test_kick_cron_follows_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings
    from worker.actors.qualification import _kick_cron

    monkeypatch.setenv("QUALIFICATION_KICK_TIME", "07:05")
    monkeypatch.setenv("QUALIFICATION_KICK_DAYS", "1-3")
    get_settings.cache_clear()
    try:
        assert _kick_cron() == "5 7 1-3 * *"
        monkeypatch.setenv("QUALIFICATION_KICK_TIME", "02:30")  # inside DST changes
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="03:00"):
            get_settings()
    finally:
        monkeypatch.delenv("QUALIFICATION_KICK_TIME")
        monkeypatch.delenv("QUALIFICATION_KICK_DAYS")
        get_settings.cache_clear()
