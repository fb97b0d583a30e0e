"""The closed broker: a message pushed straight into Redis is refused, dead-lettered and
counted, never executed (issue 17's ``redis-cli`` attack), with a real worker process.

The forged messages are written as ``redis-cli`` would (HSET the body, RPUSH its id),
not through Dramatiq. A correctly signed message sent the ordinary way is the positive
control: the same worker runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT, get_settings
from tests.support.observability import free_port, scrape, stop, subprocess_env, value

KEY = "k" * 40
FORGED_DAY = "2025-01-03"
CONTROL_DAY = "2025-01-02"

needs_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="needs a real Redis (REDIS_URL)"
)


def _push(client: Any, body: dict[str, Any]) -> str:
    """What ``redis-cli HSET dramatiq:<q>.msgs <id> <json>; RPUSH dramatiq:<q> <id>`` does."""
    redis_id = str(uuid.uuid4())
    body = {**body, "options": {**body["options"], "redis_message_id": redis_id}}
    queue = body["queue_name"]
    client.hset(f"dramatiq:{queue}.msgs", redis_id, json.dumps(body))
    client.rpush(f"dramatiq:{queue}", redis_id)
    return redis_id


def _body(args: list[Any], **options: Any) -> dict[str, Any]:
    return {
        "queue_name": "balances", "actor_name": "balances.start_day", "args": args,
        "kwargs": {}, "options": options, "message_id": str(uuid.uuid4()),
        "message_timestamp": int(time.time() * 1000),
    }  # fmt: skip


def _wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@needs_redis
def test_forged_messages_are_refused_dead_lettered_and_counted(
    session: Session, redis_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = tmp_path / "canary.csv"
    canary.write_text("account_number,balance,as_of_date\n", "utf-8")
    eod = tmp_path / "eod.csv"
    eod.write_text("account_number,balance,as_of_date\n", "utf-8")
    monkeypatch.setenv("BROKER_SIGNING_KEY", KEY)
    monkeypatch.setenv("BALANCE_SOURCE", f"file:{eod}")
    get_settings.cache_clear()
    port = free_port()
    worker = subprocess.Popen(
        ["dramatiq", "worker.tasks", "--processes", "1", "--threads", "1",
         "--queues", "balances"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=subprocess_env(METRICS_PORT=str(port), PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "p"),
                           BROKER_SIGNING_KEY=KEY, BALANCE_SOURCE=f"file:{eod}",
                           DRAMATIQ_BROKER="redis", LOG_FORMAT="text"),
    )  # fmt: skip
    from dramatiq import Message

    try:
        from worker.actors.balances import start_day
        from worker.signing import digest, sign

        # 1. The attack, verbatim: no signature at all.
        unsigned = _push(redis_client, _body([FORGED_DAY, 1, f"file:{canary}"]))
        # 2. A signature made with another key.
        other = start_day.message(FORGED_DAY)
        other.options["pn_signature"] = digest(b"x" * 40, other)
        bad_sig = _push(redis_client, other.asdict())
        # 3. Correctly signed (a leaked key or a buggy producer), arguments out of bounds.
        bounded = Message(queue_name="balances", actor_name="balances.start_day",
                          args=(FORGED_DAY, 100_000), kwargs={}, options={})  # fmt: skip
        invalid = _push(redis_client, sign(bounded).asdict())
        # 4. The positive control: a message built the ordinary way (signed), same worker.
        _push(redis_client, start_day.message(CONTROL_DAY, 1).asdict())

        def dead() -> set[str]:
            return {m.decode() for m in redis_client.zrange("dramatiq:balances.XQ", 0, -1)}

        _wait_for(lambda: {unsigned, bad_sig, invalid} <= dead(), 60, "three dead letters")
        _wait_for(
            lambda: session.scalar(
                text("SELECT count(*) FROM job_runs WHERE run_key = :d"), {"d": CONTROL_DAY}
            ),
            60, "the signed message's run",
        )  # fmt: skip
        metrics = scrape(port, want="pn_broker_messages_refused_total")
        session.rollback()
        runs = session.execute(text("SELECT run_key, triggered_by FROM job_runs")).all()
    finally:
        log = stop(worker)
        get_settings.cache_clear()
    # Never executed: no run for the forged day, and the control ran.
    assert [r.run_key for r in runs if r.run_key == FORGED_DAY] == [], runs
    assert any(r.run_key == CONTROL_DAY for r in runs), runs
    # Dead-lettered, and the operator's DLQ tools see them.
    from app.maintenance import dlq

    view = dlq.BrokerView(redis_client, ("balances",))
    listed = {d.redis_id: d for d in dlq.list_dead(view, ["balances"])}
    assert {unsigned, bad_sig, invalid} <= set(listed)
    assert listed[unsigned].actor == "balances.start_day"
    # Counted by reason (no message content in the labels).
    for reason in ("unsigned", "bad_signature", "invalid_arguments"):
        assert value(metrics, "pn_broker_messages_refused_total", queue="balances",
                     reason=reason) == 1, (reason, log[-3000:])  # fmt: skip
    # Logged with id and reason, never with the arguments.
    assert "refused message" in log and "shard_count" in log
    assert str(canary) not in log and "100000" not in log


# --- the argument schemas and the signature, without a worker ------------------------


def test_every_actor_has_a_schema_and_its_signature_fits() -> None:
    import inspect

    from worker import tasks
    from worker.arguments import SCHEMAS

    actors = {name: tasks.broker.get_actor(name) for name in tasks.broker.get_declared_actors()}
    assert set(actors) == set(SCHEMAS)
    for name, actor in actors.items():
        assert list(inspect.signature(actor.fn).parameters) == list(SCHEMAS[name].model_fields)


@pytest.mark.parametrize(
    ("actor", "args", "kwargs"),
    [
        ("balances.start_day", ["2025-01-03", 1, "file:/etc/hostname"], {}),
        ("balances.start_day", ["2025-01-03", 1, "http://evil.example/"], {}),
        ("balances.start_day", ["2025-01-03", 100_000], {}),
        ("balances.start_day", ["2025-01-03", 0], {}),
        ("balances.start_day", ["2025-1-3"], {}),
        ("balances.start_day", ["2025-01-03T00:00"], {}),
        ("balances.start_day", ["9999-01-03"], {}),
        ("balances.start_day", ["2025-01-03", "4"], {}),
        ("balances.start_day", ["2025-01-03", True], {}),
        ("balances.start_day", ["2025-01-03"], {"extra": 1}),
        ("balances.start_day", ["2025-01-03", 1, None, "more"], {}),
        ("balances.start_day", ["2025-01-03"], {"day": "2025-01-04"}),
        ("balances.check_shard", ["not-a-uuid", 0], {}),
        ("balances.check_shard", [str(uuid.uuid4()), 5000], {}),
        ("qualification.run_month", ["2025-13"], {}),
        ("qualification.run_month", [" 2025-01"], {}),
        ("qualification.run_month", ["2025-01"], {"recompute": "yes"}),
        ("qualification.run_month", ["2025-01"], {"recompute": 1}),
        ("maintenance.retention_run", ["ops; rm -rf /"], {}),
        ("maintenance.retention_run", ["anyone"], {}),
        ("delivery.poll", [100_000], {}),
        ("delivery.poll_day", ["2025-01-03", "everything"], {}),
        ("notifications.send_batch", ["+972501234567"], {}),
        ("notifications.reconcile", [1], {}),
        ("no.such_actor", [], {}),
    ],
)
def test_messages_outside_the_schema_are_refused(
    actor: str, args: list[Any], kwargs: dict[str, Any]
) -> None:
    from worker.arguments import InvalidArguments, check_arguments

    with pytest.raises(InvalidArguments) as caught:
        check_arguments(actor, None, args, kwargs)
    assert "+97250" not in str(caught.value) and "/etc" not in str(caught.value)


def test_valid_messages_pass_and_producers_cannot_build_invalid_ones() -> None:
    from worker.actors.balances import start_day
    from worker.actors.maintenance import retention_run
    from worker.actors.qualification import run_month
    from worker.arguments import InvalidArguments

    for message in (
        start_day.message("2025-01-03"),
        start_day.message("2025-01-03", 8, "http"),
        run_month.message("2025-01", recompute=True, start_notifications=False),
        retention_run.message("cli:ops.alice"),
        retention_run.message("scheduler"),
    ):
        assert message.options["pn_signature"]
    with pytest.raises(InvalidArguments):
        start_day.message("2025-01-03", 1, "file:/etc/hostname")
    # periodiq's kick: Actor.send_with_options(scheduled_at=...), the same signing path.
    from worker.actors.balances import daily_kick
    from worker.signing import signature_valid

    kick = daily_kick.message_with_options(scheduled_at="2026-12-01T22:30:00+02:00")
    assert signature_valid(kick)


def test_the_signature_survives_the_brokers_changes_but_not_a_forger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sentry_sdk.integrations.dramatiq import SentryMiddleware

    from worker.actors.balances import start_day
    from worker.signing import signature_valid

    monkeypatch.setenv("BROKER_SIGNING_KEY", f"{'a' * 32},{'b' * 32}")
    get_settings.cache_clear()
    try:
        message = start_day.message("2025-01-03", 2)
        # What retries, delays, a dead-letter replay and Sentry add keep it valid...
        moved = message.copy(
            queue_name="balances.DQ",
            options={"eta": 1, "retries": 3, "traceback": "x", "redis_message_id": "r",
                     "dlq_replayed_at": 5, SentryMiddleware.SENTRY_HEADERS_NAME: {}},
        )  # fmt: skip
        assert signature_valid(moved)
        # ...any change of content, target or options does not.
        for forged in (
            message.copy(args=("2025-01-04", 2)),
            message.copy(kwargs={"source": "http"}),
            message.copy(actor_name="balances.repair_gaps"),
            message.copy(queue_name="maintenance"),
            message.copy(message_id=str(uuid.uuid4())),
            message.copy(options={"on_success": "balances.start_day"}),
        ):
            assert not signature_valid(forged)
        # Rotation: a message signed with the second (older) key still verifies.
        monkeypatch.setenv("BROKER_SIGNING_KEY", f"{'b' * 32},{'c' * 32}")
        get_settings.cache_clear()
        assert signature_valid(message) is False
        monkeypatch.setenv("BROKER_SIGNING_KEY", f"{'c' * 32},{'a' * 32}")
        get_settings.cache_clear()
        assert signature_valid(message)
    finally:
        get_settings.cache_clear()


def test_production_needs_a_signing_key_of_32_characters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from app.config import Settings
    from worker.signing import SigningKeyMissing, signing_keys

    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.delenv("BROKER_SIGNING_KEY", raising=False)
    get_settings.cache_clear()
    try:
        with pytest.raises(SigningKeyMissing):
            signing_keys()
        with pytest.raises(ValidationError, match="32 characters"):
            Settings(broker_signing_key="short")
    finally:
        get_settings.cache_clear()
