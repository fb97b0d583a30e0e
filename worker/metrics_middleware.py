"""Observability middleware of the workers, and the /metrics exporters of workers and scheduler.

* ``PrometheusMiddleware``: Dramatiq's own middleware (``dramatiq_messages_total``,
  durations, errors, retries, dead letters, in-progress) pointed at *our* multiprocess
  directory, with our exporter fork instead of Dramatiq's (ours adds the scrape-time
  queue sampler and every ``pn_*`` domain metric), and the scheduler's kick counters.
* ``LogContextMiddleware``: JSON logs in worker processes; actor, message id and queue
  bound to every line logged while a message is processed.
* ``serve_worker_metrics``: the exporter fork of a ``dramatiq`` command (port
  ``METRICS_PORT``, 9191). ``start_scheduler_exporter``: the same, in a thread of the
  ``periodiq`` process (``SCHEDULER_METRICS_PORT``, 9192), which has no forks; it also
  serves job freshness read from ``job_runs`` (app/observability/job_runs.py).
  Both answer ``/healthz`` and ``/readyz`` (worker/health.py) beside ``/metrics``.

The multiprocess directory was chosen in ``worker/__init__.py`` before anything imported
prometheus_client (see app/observability/multiprocess.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dramatiq.common import current_millis
from dramatiq.middleware import Middleware
from dramatiq.middleware import prometheus as dramatiq_prometheus

from app.config import get_settings
from app.db.session import session_scope
from app.observability import metrics
from app.observability import multiprocess as mp
from app.observability.exporter import (
    Refresher,
    build_registry,
    make_server,
    start_in_thread,
)
from app.observability.job_runs import JobRunsCollector
from app.observability.logging import bind, configure_logging
from app.observability.sentry import release
from worker.health import worker_readiness
from worker.queue_stats import refresher
from worker.resources import Queue, broker_kind, redis_client

logger = logging.getLogger(__name__)

DURATION_BUCKETS_SECONDS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
    30,
    60,
    600,
    900,
)


class PrometheusMiddleware(dramatiq_prometheus.Prometheus):
    """Dramatiq's Prometheus middleware, multiprocess-safe, inert outside workers."""

    def __init__(self) -> None:
        super().__init__()
        self.role, self.directory = mp.current()

    @property
    def forks(self) -> list[Any]:
        return [serve_worker_metrics] if self.role is mp.Role.WORKER else []

    def after_process_boot(self, broker: Any) -> None:
        if self.role is not mp.Role.WORKER or self.directory is None:
            return  # tests/CLI (StubBroker boots in-process): keep their default registry
        # Dramatiq reads its module-level DB_PATH at call time (env var, exposition,
        # mark_process_dead): make it ours so both sets of metrics share one directory.
        dramatiq_prometheus.DB_PATH = str(self.directory)
        super().after_process_boot(broker)
        # Dramatiq times messages in milliseconds; Prometheus' base unit (and
        # `promtool check metrics`) wants seconds: same buckets, in seconds.
        import prometheus_client as prom

        self.message_durations = prom.Histogram(
            "dramatiq_message_duration_seconds",
            "The time spent processing messages.",
            ["queue_name", "actor_name"],
            buckets=DURATION_BUCKETS_SECONDS,
            registry=prom.CollectorRegistry(),
        )
        mp.mark_dead_processes(self.directory)
        metrics.BUILD_INFO.labels(version=release(), role=self.role.value).set(1)

    def _booted(self) -> bool:
        return hasattr(self, "total_messages")

    def after_enqueue(self, broker: Any, message: Any, delay: Any) -> None:
        if "scheduled_at" in message.options:  # periodiq's kicks carry scheduled_at
            metrics.SCHEDULER_KICKS.labels(actor=message.actor_name).inc()
            metrics.SCHEDULER_LAST_KICK.labels(actor=message.actor_name).set(time.time())
        if self._booted():
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker: Any, message: Any) -> None:
        if self._booted():
            super().before_delay_message(broker, message)

    def before_process_message(self, broker: Any, message: Any) -> None:
        if self._booted():
            super().before_process_message(broker, message)

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if not self._booted():
            return
        labels = (message.queue_name, message.actor_name)
        started = self.message_start_times.pop(message.message_id, current_millis())
        self.message_durations.labels(*labels).observe((current_millis() - started) / 1000)
        self.inprogress_messages.labels(*labels).dec()
        self.total_messages.labels(*labels).inc()
        if exception is not None:
            self.total_errored_messages.labels(*labels).inc()

    after_skip_message = after_process_message

    def after_nack(self, broker: Any, message: Any) -> None:
        if self._booted():
            super().after_nack(broker, message)

    def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
        if self._booted():
            super().after_worker_shutdown(broker, worker)


class LogContextMiddleware(Middleware):
    """Actor, message id and queue on every log line of a message; JSON logs in workers."""

    def after_process_boot(self, broker: Any) -> None:
        if mp.current()[0] is mp.Role.WORKER:
            configure_logging()

    def before_process_message(self, broker: Any, message: Any) -> None:
        bind(
            actor=message.actor_name,
            message_id=message.message_id,
            queue=message.queue_name,
            correlation_id=message.options.get("correlation_id"),
        )

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        # The worker thread's next message must not inherit this one's context.
        bind(actor=None, message_id=None, queue=None, correlation_id=None)

    after_skip_message = after_process_message


def _refreshers() -> list[Refresher]:
    """Scrape-time samplers: queue stats when the broker is a real Redis."""
    if broker_kind() != "redis":
        return []  # stub broker, or a fakeredis server private to this process
    return [refresher(redis_client(), [q.value for q in Queue])]


def serve_worker_metrics() -> int:
    """Fork function of ``dramatiq``: serve the worker group's /metrics until stopped."""
    role, directory = mp.current()
    configure_logging()
    if directory is None:
        logger.error("no multiprocess directory: the exporter has nothing to serve")
        return 1
    settings = get_settings()
    registry = build_registry(directory, _refreshers())
    server = make_server(settings.metrics_host, settings.metrics_port, registry, worker_readiness())
    logger.info("serving worker metrics on port %s", settings.metrics_port)
    server.serve_forever()
    return 0


_scheduler_server: Any = None


def start_scheduler_exporter() -> bool:
    """In the periodiq process only: serve its /metrics from a daemon thread."""
    global _scheduler_server
    role, directory = mp.current()
    if role is not mp.Role.SCHEDULER or directory is None or _scheduler_server is not None:
        return False
    configure_logging()
    settings = get_settings()
    registry = build_registry(directory, _refreshers(), [JobRunsCollector(session_scope)])
    _scheduler_server = make_server(
        settings.metrics_host, settings.scheduler_metrics_port, registry, worker_readiness()
    )
    start_in_thread(_scheduler_server)
    metrics.BUILD_INFO.labels(version=release(), role=role.value).set(1)
    logger.info("serving scheduler metrics on port %s", settings.scheduler_metrics_port)
    return True
