"""The /metrics HTTP exporter of a worker group or of the scheduler, with its health.

Paths: ``/metrics`` (Prometheus), ``/healthz`` (the process answers: 200),
``/readyz`` (``app.observability.health``: 200 ready, 503 not); anything else 404.

It serves the multiprocess registry (every process's values summed by the rules of each
metric's ``multiprocess_mode``). Before each collection it runs *refreshers*: sampled
gauges (queue depth, DLQ size, oldest message age) are read from their source at scrape
time, so they are never staler than the scrape itself. A failing refresher is logged
and counted (``pn_metrics_refresh_errors_total``) but never breaks the scrape.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.exposition import MetricsHandler
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from app.observability import metrics
from app.observability.health import Readiness

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


def build_registry(
    path: Path, refreshers: Sequence[Refresher] = (), collectors: Sequence[Collector] = ()
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RefreshingMultiProcessCollector(path, refreshers))
    for collector in collectors:
        registry.register(collector)
    return registry


def _alive() -> tuple[bool, dict[str, Any]]:
    return True, {"status": "ok"}


def make_server(
    host: str, port: int, registry: CollectorRegistry, ready: Readiness | None = None
) -> ThreadingHTTPServer:
    """An HTTP server answering /metrics from ``registry``, /healthz and /readyz; else 404."""
    checks: dict[str, Readiness] = {"/healthz": _alive, "/readyz": ready or _alive}

    class Handler(MetricsHandler.factory(registry)):  # type: ignore[misc]
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/metrics":
                super().do_GET()
                return
            check = checks.get(path)
            if check is None:
                self._answer(404, {"error": "not found"})
                return
            ok, body = check()
            self._answer(200 if ok else 503, body)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # probes: no access log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True)
    thread.start()
    return thread
