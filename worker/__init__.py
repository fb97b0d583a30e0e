"""Dramatiq side: broker setup and middleware, thin actors, the periodiq schedule."""

# Before anything imports prometheus_client (docs/design.md trap): every worker, exporter fork
# and scheduler process imports this package first, so its multiprocess directory is set
# here. A no-op in other processes (CLI, tests).
from app.observability.multiprocess import configure_process

configure_process()
