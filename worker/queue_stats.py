"""Queue depth, dead-letter size and oldest-message age, read from the Redis broker.

Dramatiq's Redis layout (dramatiq/brokers/redis/dispatch.lua): ``dramatiq:<q>`` is a
list of message ids (oldest at the head), ``dramatiq:<q>.msgs`` a hash id -> message,
``dramatiq:<q>.DQ`` the delayed queue (retries with backoff, ETAs) with the same
layout, ``dramatiq:<q>.XQ`` a sorted set of dead-lettered ids. The exporter samples this
at scrape time (``refresh``), so the gauges are as fresh as the scrape.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.observability import metrics

NAMESPACE = "dramatiq"


@dataclass(frozen=True)
class QueueStats:
    queue: str  # "sms" or its delayed queue "sms.DQ"
    depth: int
    dead_lettered: int | None  # only on the canonical queue (delayed ones share it)
    oldest_age_seconds: float | None  # None: empty, or a delayed queue (ages are future ETAs)


def sample(client: Any, queues: Iterable[str], now: float | None = None) -> list[QueueStats]:
    """One pipelined round trip per queue (LLEN ×2, ZCARD, LINDEX)."""
    now = time.time() if now is None else now
    stats: list[QueueStats] = []
    for queue in sorted(queues):
        key = f"{NAMESPACE}:{queue}"
        pipe = client.pipeline(transaction=False)
        pipe.llen(key)
        pipe.llen(f"{key}.DQ")
        pipe.zcard(f"{key}.XQ")
        pipe.lindex(key, 0)
        depth, delayed, dead, head = pipe.execute()
        age = _age(client, key, head, now) if head is not None else None
        stats.append(QueueStats(queue, int(depth), int(dead), age))
        stats.append(QueueStats(f"{queue}.DQ", int(delayed), None, None))
    return stats


def _age(client: Any, key: str, message_id: bytes | str, now: float) -> float | None:
    raw = client.hget(f"{key}.msgs", message_id)
    if raw is None:  # consumed between LINDEX and HGET
        return None
    try:
        enqueued_ms = float(json.loads(raw)["message_timestamp"])
    except (ValueError, KeyError, TypeError):
        return None
    return max(0.0, now - enqueued_ms / 1000)


def publish(stats: Iterable[QueueStats]) -> None:
    """Set the gauges; an empty queue reports age 0 (not a stale older value)."""
    for s in stats:
        metrics.QUEUE_DEPTH.labels(queue=s.queue).set(s.depth)
        if s.dead_lettered is not None:
            metrics.DLQ_SIZE.labels(queue=s.queue).set(s.dead_lettered)
        if not s.queue.endswith(".DQ"):
            metrics.QUEUE_OLDEST_AGE.labels(queue=s.queue).set(s.oldest_age_seconds or 0.0)
    metrics.QUEUE_STATS_TIMESTAMP.set_to_current_time()


def refresher(client: Any, queues: Iterable[str]) -> tuple[str, Any]:
    """A named refresher for the exporter (app.observability.exporter)."""
    names = tuple(queues)

    def refresh() -> None:
        publish(sample(client, names))

    return ("redis_queues", refresh)
