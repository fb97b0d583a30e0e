"""Serving the receiver: uvicorn, one process, and /metrics on a port of its own.

The callback port is the one the bank's proxy forwards to; /metrics stays off it, on
``metrics_port`` (Prometheus scrapes it inside the network).
"""

from __future__ import annotations

import os
from pathlib import Path

import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry

from app.callbacks.web import create_app
from app.config import Settings, get_settings
from app.observability.exporter import build_registry, make_server, start_in_thread
from app.observability.multiprocess import ENV_DIR


def _registry() -> CollectorRegistry:
    """The process's metrics: files under PROMETHEUS_MULTIPROC_DIR when the image sets it."""
    folder = os.environ.get(ENV_DIR)
    if not folder:
        return REGISTRY
    Path(folder).mkdir(parents=True, exist_ok=True)
    return build_registry(Path(folder))


def run(host: str, port: int, *, metrics_port: int = 0, settings: Settings | None = None) -> None:
    """Serve until stopped (SIGTERM/SIGINT: uvicorn finishes the requests in flight)."""
    settings = settings or get_settings()
    app = create_app(settings)
    if metrics_port:
        start_in_thread(make_server(settings.metrics_host, metrics_port, _registry()))
    # No access log: the receiver's own counters say what happened, without the noise.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None,
                server_header=False, proxy_headers=True)  # fmt: skip
