"""The /metrics HTTP exporter of a worker group or of the scheduler.

It serves the multiprocess registry (every process's values summed by the rules of each
metric's ``multiprocess_mode``). Before each collection it runs *refreshers*: sampled
gauges (queue depth, DLQ size, oldest message age) are read from their source at scrape
time, so they are never staler than the scrape itself. A failing refresher is logged
and counted (``pn_metrics_refresh_errors_total``) but never breaks the scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.exposition import MetricsHandler
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.observability import metrics

logger = logging.getLogger(__name__)

Refresher = tuple[str, Callable[[], None]]


class RefreshingMultiProcessCollector(Collector):
    """Runs the refreshers, then yields the multiprocess directory's merged metrics."""

    def __init__(self, path: Path, refreshers: Sequence[Refresher] = ()) -> None:
        self._path = path
        self._refreshers = list(refreshers)
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:  # concurrent scrapes must not sample Redis twice at once
            for name, refresh in self._refreshers:
                try:
                    refresh()
                except Exception:  # a scrape must still answer; the counter tells
                    logger.warning("metrics refresher %s failed", name, exc_info=True)
                    metrics.METRICS_REFRESH_ERRORS.labels(source=name).inc()
        # prometheus_client's multiprocess module is unannotated.
        collector = multiprocess.MultiProcessCollector(None, path=str(self._path))  # type: ignore[no-untyped-call]
        merged: Iterable[Metric] = collector.collect()  # type: ignore[no-untyped-call]
        return merged

    def describe(self) -> Iterator[Metric]:  # no up-front description: collected lazily
        return iter(())


def build_registry(path: Path, refreshers: Sequence[Refresher] = ()) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RefreshingMultiProcessCollector(path, refreshers))
    return registry


def make_server(host: str, port: int, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """An HTTP server answering /metrics (any path) from ``registry``."""
    handler = MetricsHandler.factory(registry)
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True)
    thread.start()
    return thread
