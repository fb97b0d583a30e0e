"""Dead letters made by a real Dramatiq worker on a Redis broker (REDIS_URL, else fakeredis)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries
from typer.testing import CliRunner

from app.maintenance import dlq
from worker.resources import Queue

state: dict[str, Any] = {"fail": True, "done": []}


@pytest.fixture
def broker(redis_client: Any) -> Iterator[tuple[RedisBroker, Any]]:
    b = RedisBroker(
        client=redis_client, middleware=[Retries(max_retries=1, min_backoff=10, max_backoff=20)]
    )
    b.declare_queue("maintenance")

    @dramatiq.actor(broker=b, queue_name="maintenance", actor_name="test.flaky")
    def flaky(item: int) -> None:
        if state["fail"]:
            raise RuntimeError(f"boom {item}")
        state["done"].append(item)

    state.update(fail=True, done=[])
    yield b, flaky
    b.close()


def _view(client: Any) -> dlq.BrokerView:
    return dlq.BrokerView(client, tuple(q.value for q in Queue))


def _run(b: RedisBroker) -> None:
    worker = dramatiq.Worker(b, worker_timeout=50, worker_threads=1)
    worker.start()
    b.join("maintenance", timeout=20_000)
    worker.join()
    worker.stop()


def test_list_replay_purge(broker: tuple[RedisBroker, Any], redis_client: Any) -> None:
    b, flaky = broker
    for item in (1, 2, 3):
        flaky.send(item)
    _run(b)

    dead = dlq.list_dead(_view(redis_client), ["maintenance"])
    assert sorted(d.args[0] for d in dead) == [1, 2, 3]
    assert all(d.actor == "test.flaky" and d.error and "boom" in d.error for d in dead)
    assert dlq.counts(_view(redis_client))["maintenance"] == 3

    # Replay one by message id: the worker now succeeds; it leaves the dead letters.
    state["fail"] = False
    one = next(d for d in dead if d.args == [2])
    assert [d.message_id for d in dlq.replay(_view(redis_client), ids=[one.message_id])] == [
        one.message_id
    ]
    assert redis_client.llen("dramatiq:maintenance") == 1
    _run(b)
    assert state["done"] == [2]
    assert sorted(d.args[0] for d in dlq.list_dead(_view(redis_client))) == [1, 3]

    # Purge the rest for good.
    assert len(dlq.purge(_view(redis_client), queues=["maintenance"])) == 2
    assert dlq.list_dead(_view(redis_client)) == []
    assert redis_client.hlen("dramatiq:maintenance.XQ.msgs") == 0


def test_operator_errors(redis_client: Any) -> None:
    with pytest.raises(dlq.DLQError, match="unknown queue"):
        dlq.list_dead(_view(redis_client), ["nope"])
    with pytest.raises(dlq.DLQError, match="not in the dead-letter queues"):
        dlq.replay(_view(redis_client), ids=["missing-id"])


def test_cli_refuses_without_a_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli.main import cli

    result = CliRunner().invoke(cli, ["dlq", "purge"])
    assert result.exit_code != 0
    assert "say what to purge" in str(result.exception)
