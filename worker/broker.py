"""The one broker module, imported before any actor (``worker.tasks`` does it first).

Production uses Redis (REDIS_URL). ``DRAMATIQ_BROKER=stub`` gives an in-process
StubBroker (the demo and unit tests); ``DRAMATIQ_BROKER=fakeredis`` a RedisBroker on a
fakeredis server (tests that need Redis semantics without a Redis server).
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from periodiq import PeriodiqMiddleware

from app.config import get_settings
from app.observability.sentry import init_sentry
from worker.metrics_middleware import (
    LogContextMiddleware,
    PrometheusMiddleware,
    start_scheduler_exporter,
)

# Queues are split by stage so worker pools can be sized apart (docker/compose.yaml).
QUEUES = ("balances", "qualification", "outbox", "sms", "delivery", "maintenance")

_redis_client: Any = None


def middleware() -> list[Any]:
    return [
        # resource lifecycle
        AgeLimit(),
        TimeLimit(time_limit=30 * 60 * 1000),
        ShutdownNotifications(),
        CurrentMessage(),
        # observability: Prometheus (multiprocess, /metrics fork), log context
        PrometheusMiddleware(),
        LogContextMiddleware(),
        # orchestration
        Callbacks(),
        Pipelines(),
        # retry control: small backoff; idempotent actors make redelivery harmless
        Retries(max_retries=10, min_backoff=1_000, max_backoff=5 * 60 * 1000),
        # scheduling: periodic actors are thin kicks (DESIGN.md periodiq traps)
        PeriodiqMiddleware(skip_delay=30),
    ]


def redis_client() -> Any:
    """The Redis client the broker uses (rate limiters share it)."""
    return _redis_client


def build_broker(kind: str | None = None) -> dramatiq.Broker:
    global _redis_client
    kind = kind or os.environ.get("DRAMATIQ_BROKER", "redis")
    if kind == "stub":
        broker: dramatiq.Broker = StubBroker(middleware=middleware())
        broker.emit_after("process_boot")
        _redis_client = None
    elif kind == "fakeredis":
        import fakeredis

        _redis_client = fakeredis.FakeRedis(server=_shared_fake_server())
        broker = RedisBroker(client=_redis_client, middleware=middleware())
    else:
        settings = get_settings()
        if settings.redis_url is None:
            raise RuntimeError("REDIS_URL is not set (or use DRAMATIQ_BROKER=stub)")
        import redis

        _redis_client = redis.Redis.from_url(settings.redis_url.get_secret_value())
        broker = RedisBroker(client=_redis_client, middleware=middleware())
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


_fake_server: Any = None


def _shared_fake_server() -> Any:
    global _fake_server
    if _fake_server is None:
        import fakeredis

        _fake_server = fakeredis.FakeServer()
    return _fake_server


# Sentry first: its Dramatiq integration hooks Broker.__init__ (only if SENTRY_DSN is set).
init_sentry()
broker = build_broker()
dramatiq.set_broker(broker)
start_scheduler_exporter()  # periodiq has no forks: the scheduler serves /metrics itself
