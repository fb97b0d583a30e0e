"""The worker wing's shared resources: the queue names and the process's Redis client.

One module owns both, so the broker, the metrics exporter, the rate limiters and the
operator CLI (dead letters, queue depths) use the same client and the same names.

``DRAMATIQ_BROKER`` chooses the transport: ``redis`` (production; ``REDIS_URL``),
``fakeredis`` (one in-memory server shared by the process: tests that need Redis
semantics without a server) or ``stub`` (an in-process StubBroker: the demo and unit
tests; there is no Redis client then).
"""

from __future__ import annotations

import os
import threading
from enum import StrEnum
from typing import Any

from app.config import get_settings


class Queue(StrEnum):
    """Queues are split by stage so worker pools can be sized apart (docker/compose.yaml)."""

    BALANCES = "balances"
    QUALIFICATION = "qualification"
    OUTBOX = "outbox"
    SMS = "sms"
    DELIVERY = "delivery"
    MAINTENANCE = "maintenance"


class RedisNotConfigured(RuntimeError):
    """REDIS_URL is not set and the broker kind needs it."""


_lock = threading.Lock()
_client: Any = None
_client_pid: int | None = None
_fake_server: Any = None


def broker_kind() -> str:
    return os.environ.get("DRAMATIQ_BROKER", "redis")


def shared_fake_server() -> Any:
    """The one fakeredis server of this process (``DRAMATIQ_BROKER=fakeredis``, tests)."""
    global _fake_server
    with _lock:
        if _fake_server is None:
            import fakeredis

            _fake_server = fakeredis.FakeServer()
        return _fake_server


def redis_client() -> Any | None:
    """The process's Redis client; rebuilt after a fork.

    The broker's Redis, and the one the rate limits and the operator tools (dead letters,
    queue depths) use. With the stub broker it is still ``REDIS_URL``'s when that is set
    (an operator run then shares the workers' rate limits), else None.
    """
    global _client, _client_pid
    kind = broker_kind()
    if kind == "fakeredis":
        server = shared_fake_server()
        with _lock:
            if _client is None:
                import fakeredis

                _client = fakeredis.FakeRedis(server=server)
            return _client
    with _lock:
        if _client is None or _client_pid != os.getpid():
            url = get_settings().redis_url
            if url is None:
                if kind == "stub":
                    return None
                raise RedisNotConfigured("REDIS_URL is not set (or use DRAMATIQ_BROKER=stub)")
            import redis

            # A connect timeout: an unreachable broker is an error, not a hang.
            _client = redis.Redis.from_url(url.get_secret_value(), socket_connect_timeout=10)
            _client_pid = os.getpid()
        return _client
