"""Dead-lettered Dramatiq messages: list, replay, purge (Redis broker layout).

Dramatiq's Redis broker (dramatiq/brokers/redis/dispatch.lua) keeps, per canonical
queue ``q``: ``dramatiq:q`` (list of ids waiting), ``dramatiq:q.msgs`` (hash id ->
message JSON), and the dead letters in ``dramatiq:q.XQ`` (sorted set id -> time of
death, ms) with their bodies in ``dramatiq:q.XQ.msgs``. Messages that died on the
delayed queue ``q.DQ`` land in the same ``q.XQ``. Ids in these keys are the message's
``options.redis_message_id``, not its ``message_id``.

Replay does exactly what the broker's ``enqueue`` command does (HSET + RPUSH) and
removes the dead letter, in one MULTI/EXEC so a message is never both dead and queued
nor lost. The replayed copy gets a fresh redis id, its retry count reset (it would
otherwise die on its first failure) and no ETA. Dramatiq is not imported: app/ stays
free of the worker runtime, and this works against any Redis the broker used.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NAMESPACE = "dramatiq"


@dataclass(frozen=True)
class BrokerView:
    """The broker's Redis as the operator tools see it: its client and its queue names.

    Built by the caller from the worker wing (``worker.resources``: the one owner of the
    Redis client and of the ``Queue`` enum), so app/ never imports the worker runtime.
    """

    client: Any
    queues: tuple[str, ...]


class DLQError(ValueError):
    """An operator error: unknown queue, unknown message id."""


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    redis_id: str
    message_id: str
    actor: str
    args: list[Any]
    kwargs: dict[str, Any]
    retries: int
    died_at: datetime | None
    enqueued_at: datetime | None
    error: str | None  # last line of the last traceback Dramatiq stored, if any

    def as_row(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "redis_id": self.redis_id,
            "message_id": self.message_id,
            "actor": self.actor,
            "args": json.dumps(self.args, ensure_ascii=False),
            "kwargs": json.dumps(self.kwargs, ensure_ascii=False),
            "retries": self.retries,
            "died_at": self.died_at,
            "enqueued_at": self.enqueued_at,
            "error": self.error,
        }


def _key(queue: str, suffix: str = "") -> str:
    return f"{NAMESPACE}:{queue}{suffix}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _from_ms(ms: float | int | None) -> datetime | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(float(ms) / 1000, UTC).replace(tzinfo=None)


def check_queues(broker: BrokerView, queues: Sequence[str] | None) -> tuple[str, ...]:
    if not queues:
        return broker.queues
    unknown = [q for q in queues if q not in broker.queues]
    if unknown:
        known = ", ".join(broker.queues)
        raise DLQError(f"unknown queue(s) {', '.join(unknown)}; known: {known}")
    return tuple(queues)


def _error_of(options: dict[str, Any]) -> str | None:
    # Retries stores the traceback in options["traceback"] when it schedules a retry; the
    # dead letter keeps the body of its last enqueue, so this is the previous attempt's
    # error (the final attempt's is in the worker log). None if it never retried.
    tb = options.get("traceback")
    if not tb:
        return None
    lines = [line for line in str(tb).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else None


def _parse(queue: str, redis_id: str, raw: bytes | str, died_ms: float | None) -> DeadLetter:
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    options = body.get("options") or {}
    return DeadLetter(
        queue=queue,
        redis_id=redis_id,
        message_id=str(body.get("message_id", "?")),
        actor=str(body.get("actor_name", "?")),
        args=list(body.get("args") or []),
        kwargs=dict(body.get("kwargs") or {}),
        retries=int(options.get("retries", 0) or 0),
        died_at=_from_ms(died_ms),
        enqueued_at=_from_ms(body.get("message_timestamp")),
        error=_error_of(options),
    )


def list_dead(
    broker: BrokerView, queues: Sequence[str] | None = None, limit: int = 100
) -> list[DeadLetter]:
    """The dead letters of ``queues`` (all known queues by default), oldest first."""
    client = broker.client
    result: list[DeadLetter] = []
    for queue in check_queues(broker, queues):
        entries = client.zrange(_key(queue, ".XQ"), 0, max(limit - 1, 0), withscores=True)
        if not entries:
            continue
        ids = [_text(member) for member, _ in entries]
        bodies = client.hmget(_key(queue, ".XQ.msgs"), ids)
        for (member, score), raw in zip(entries, bodies, strict=True):
            if raw is None:  # expired by broker maintenance between the two reads
                continue
            result.append(_parse(queue, _text(member), raw, score))
    result.sort(key=lambda d: d.died_at or datetime.min)
    return result[:limit]


def counts(broker: BrokerView, queues: Iterable[str] | None = None) -> dict[str, int]:
    pipe = broker.client.pipeline(transaction=False)
    names = list(broker.queues if queues is None else queues)
    for queue in names:
        pipe.zcard(_key(queue, ".XQ"))
    return {q: int(n) for q, n in zip(names, pipe.execute(), strict=True)}


def _select(
    broker: BrokerView, queues: Sequence[str] | None, ids: Sequence[str] | None, actor: str | None
) -> list[DeadLetter]:
    dead = list_dead(broker, queues, limit=1_000_000)
    if ids:
        wanted = set(ids)
        dead = [d for d in dead if d.redis_id in wanted or d.message_id in wanted]
        found = {d.redis_id for d in dead} | {d.message_id for d in dead}
        missing = sorted(wanted - found)
        if missing:
            raise DLQError(f"not in the dead-letter queues: {', '.join(missing)}")
    if actor:
        dead = [d for d in dead if d.actor == actor]
    return dead


def replay(
    broker: BrokerView,
    queues: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    actor: str | None = None,
) -> list[DeadLetter]:
    """Move the selected dead letters back onto their queues; returns what moved."""
    client = broker.client
    moved: list[DeadLetter] = []
    for dead in _select(broker, queues, ids, actor):
        raw = client.hget(_key(dead.queue, ".XQ.msgs"), dead.redis_id)
        if raw is None:
            continue
        body = json.loads(raw)
        options = dict(body.get("options") or {})
        for stale in ("eta", "traceback", "retries", "redis_message_id"):
            options.pop(stale, None)
        new_id = str(uuid.uuid4())
        options["redis_message_id"] = new_id
        options["dlq_replayed_at"] = int(datetime.now(UTC).timestamp() * 1000)
        body["options"] = options
        body["queue_name"] = dead.queue  # a delayed message goes back to the live queue
        pipe = client.pipeline(transaction=True)
        pipe.hset(_key(dead.queue, ".msgs"), new_id, json.dumps(body, separators=(",", ":")))
        pipe.rpush(_key(dead.queue), new_id)
        pipe.zrem(_key(dead.queue, ".XQ"), dead.redis_id)
        pipe.hdel(_key(dead.queue, ".XQ.msgs"), dead.redis_id)
        pipe.execute()
        moved.append(dead)
    return moved


def purge(
    broker: BrokerView,
    queues: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    actor: str | None = None,
    older_than: datetime | None = None,
) -> list[DeadLetter]:
    """Delete the selected dead letters for good; returns what was deleted."""
    client = broker.client
    selected = _select(broker, queues, ids, actor)
    if older_than is not None:
        selected = [d for d in selected if d.died_at is not None and d.died_at < older_than]
    for dead in selected:
        pipe = client.pipeline(transaction=True)
        pipe.zrem(_key(dead.queue, ".XQ"), dead.redis_id)
        pipe.hdel(_key(dead.queue, ".XQ.msgs"), dead.redis_id)
        pipe.execute()
    return selected
