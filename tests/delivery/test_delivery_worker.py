"""Delivery actors with a real Dramatiq worker, the carrier-read limiter on Redis, and the
operator commands (run/enqueue delivery-poll, report failures, report month)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.common import UserError
from app.cli.main import cli
from app.config import get_settings
from app.db.session import session_scope
from app.delivery.polling import Mode
from app.devtools.simulators.carrier import SimulatorThread
from app.models import DeliveryStatus, JobRun
from tests.delivery.helpers import Clock, history, poller, submitted


@pytest.fixture
def stub_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubBroker]:
    from worker import broker as broker_module
    from worker.actors import delivery as actors
    from worker.resources import Queue

    broker = StubBroker(middleware=broker_module.middleware())
    broker.emit_after("process_boot")
    for queue in Queue:
        broker.declare_queue(queue.value)
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    for actor in (actors.poll_kick, actors.poll, actors.poll_day):
        monkeypatch.setattr(actor, "broker", broker)
        broker.declare_actor(actor)
    yield broker
    broker.close()
    dramatiq.set_broker(previous)


def test_kick_fans_out_day_batches_that_settle_the_messages(
    session: Session, sim: SimulatorThread, stub_broker: StubBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_BACKOFF_MINUTES", "0")  # due at once
    get_settings.cache_clear()
    from worker.actors.delivery import poll_kick

    rows = submitted(session, sim, 3)
    for n in rows:
        sim.state.force(n.carrier_reference_id, "delivered")
    worker = dramatiq.Worker(stub_broker, queues={"delivery"}, worker_timeout=100)
    worker.start()
    try:
        poll_kick.send()
        stub_broker.join("delivery", fail_fast=True)
        worker.join()
    finally:
        worker.stop()
    assert all([r.status for r in history(session, n.id)] == ["Delivered"] for n in rows)
    run = session.scalars(select(JobRun).where(JobRun.job == "delivery_poll")).one()
    assert run.status == "Finished" and run.stats["finals"] == 3 and run.stats["mode"] == "bulk"


def test_carrier_reads_go_through_the_shared_redis_limiter(
    session: Session, sim: SimulatorThread, redis_client: Any
) -> None:
    from worker.limits import CARRIER_READS_KEY, carrier_reads

    limiter = carrier_reads(get_settings().model_copy(update={"delivery_carrier_rps": 50}),
                            client=redis_client)  # fmt: skip
    submitted(session, sim, 5)
    clock = Clock()
    clock.advance(minutes=2)
    stats = poller(sim, clock, limiter).poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert stats.calls == 3
    # One grant per carrier call in the limiter's sliding log (Redis's own clock).
    assert redis_client.zcard(CARRIER_READS_KEY) == 3


def test_operator_commands(session: Session, sim: SimulatorThread) -> None:
    rows = submitted(session, sim, 4)
    sim.state.force(rows[0].carrier_reference_id, "delivered")
    sim.state.force(rows[1].carrier_reference_id, "undelivered", 30005)
    sim.state.force(rows[2].carrier_reference_id, "failed", 30007)
    sim.state.force(rows[3].carrier_reference_id, "undelivered", 30005)
    runner = CliRunner()
    day = rows[0].submission_timestamp.date().isoformat()
    result = runner.invoke(
        cli, ["run", "delivery-poll", "--day", day, "--force", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.output)
    assert summary["finals"] == 4 and summary["calls"] == 2  # 4 messages, pages of 2
    assert session.scalar(select(func.count()).select_from(DeliveryStatus)) == 4

    result = runner.invoke(cli, ["report", "failures", "--month", "2026-10", "--format", "json"])
    assert result.exit_code == 0, result.output
    by_reason = json.loads(result.output)
    assert [(r["status"], r["status_code"], r["messages"]) for r in by_reason] == [
        ("Undeliverable", "30005", 2),
        ("Failed", "30007", 1),
    ]
    result = runner.invoke(
        cli, ["report", "failures", "--month", "2026-10", "--messages", "--format", "csv"]
    )
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 4
    assert "+" not in result.output  # no phone numbers

    result = runner.invoke(cli, ["report", "month", "--month", "2026-10", "--format", "json"])
    assert result.exit_code == 0, result.output
    (month,) = json.loads(result.output)
    assert (month["sms_sent"], month["delivered"], month["delivery_rate"]) == (4, 1, 25.0)

    bad = runner.invoke(cli, ["report", "failures", "--month", "October"])
    # main() turns a UserError into a clean message and exit 2.
    assert isinstance(bad.exception, UserError) and "YYYY-MM" in str(bad.exception)


def test_poll_skips_a_day_whose_batch_is_still_running(
    session: Session, sim: SimulatorThread, stub_broker: StubBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_BACKOFF_MINUTES", "0")
    get_settings.cache_clear()
    from worker.actors.delivery import poll

    rows = submitted(session, sim, 2)
    day = rows[0].submission_timestamp.date().isoformat()
    session.add(JobRun(job="delivery_poll", run_key=day))  # a worker is on it ...
    session.commit()
    from app.delivery.repository.runs import day_lock

    with day_lock(session.get_bind(), date.fromisoformat(day)) as held:  # ... and alive
        assert held
        poll()
        assert stub_broker.queues["delivery"].qsize() == 0
    # The same unfinished run without a live holder (its worker was SIGKILLed): polled.
    poll()
    assert stub_broker.queues["delivery"].qsize() == 1
    stub_broker.queues["delivery"].get()
    session.execute(text("UPDATE job_runs SET finished_at = started_at"))
    session.commit()
    poll()
    assert stub_broker.queues["delivery"].qsize() == 1
    message = dramatiq.Message.decode(stub_broker.queues["delivery"].get())
    assert (message.actor_name, tuple(message.args)) == ("delivery.poll_day", (day, "auto"))
