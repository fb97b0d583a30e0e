"""The broker: the one front door every actor module imports (``from worker.broker import actor``).

Importing it builds the broker from settings with an explicit middleware list, sets it
as Dramatiq's global broker, and starts the scheduler's /metrics when this is the
periodiq process. ``actor`` declares an actor on that broker with its queue from the
``Queue`` enum, so no actor module can be imported before the broker exists.

Production uses Redis (REDIS_URL). ``DRAMATIQ_BROKER=stub`` gives an in-process
StubBroker (the demo and unit tests); ``DRAMATIQ_BROKER=fakeredis`` a RedisBroker on a
fakeredis server (tests that need Redis semantics without a Redis server).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from periodiq import PeriodiqMiddleware

from app.config_checks import require_valid_settings
from app.observability.sentry import init_sentry
from worker.metrics_middleware import (
    LogContextMiddleware,
    PrometheusMiddleware,
    start_scheduler_exporter,
)
from worker.resources import Queue, broker_kind, redis_client
from worker.signing import SignedActor, SigningMiddleware, require_signing_key

P = ParamSpec("P")
R = TypeVar("R")


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
        # the closed broker: an unsigned, forged or invalid message is dead-lettered,
        # counted and never run (worker/signing.py). No Callbacks or Pipelines: nothing
        # uses them, and they would let a message's options name further work.
        SigningMiddleware(),
        # retry control: small backoff; idempotent actors make redelivery harmless
        Retries(max_retries=10, min_backoff=1_000, max_backoff=5 * 60 * 1000),
        # scheduling: periodic actors are thin kicks (docs/decisions.md, periodiq traps)
        PeriodiqMiddleware(skip_delay=30),
    ]


def build_broker(kind: str | None = None) -> dramatiq.Broker:
    kind = kind or broker_kind()
    if kind == "stub":
        broker: dramatiq.Broker = StubBroker(middleware=middleware())
        broker.emit_after("process_boot")
    else:
        broker = RedisBroker(client=redis_client(), middleware=middleware())
    for queue in Queue:
        broker.declare_queue(queue.value)
    return broker


def actor(
    name: str, queue: Queue, **options: Any
) -> Callable[[Callable[P, R]], dramatiq.Actor[P, R]]:
    """Declare ``fn`` as the actor ``name`` on this broker, consuming ``queue``."""

    def decorate(fn: Callable[P, R]) -> dramatiq.Actor[P, R]:
        declare = dramatiq.actor(
            actor_class=SignedActor,
            actor_name=name,
            queue_name=queue.value,
            broker=broker,
            **options,
        )
        return declare(fn)

    return decorate


# Every setting first (cron specs, send window, ...): a bad one stops the worker or the
# scheduler here with one line and exit status 2, not at schedule or send time.
require_valid_settings()
require_signing_key()  # production without BROKER_SIGNING_KEY: one line, exit 2
# Sentry next: its Dramatiq integration hooks Broker.__init__ (only if SENTRY_DSN is set).
init_sentry()
broker = build_broker()
dramatiq.set_broker(broker)
start_scheduler_exporter()  # periodiq has no forks: the scheduler serves /metrics itself
