"""Readiness of a worker group or of the scheduler: database, schema head, and Redis.

The check itself lives in ``app.observability.health`` (the callback receiver uses the
same one, without Redis); this module adds the broker's Redis where there is one.
"""

from __future__ import annotations

from app.db.session import session_scope
from app.observability.health import Readiness, readiness
from worker.resources import broker_kind, redis_client


def _ping() -> None:
    client = redis_client()
    if client is None:
        raise ConnectionError("no Redis client")
    client.ping()


def worker_readiness() -> Readiness:
    """DB reachable, schema at head, and the broker's Redis answering PING."""
    return readiness(session_scope, _ping if broker_kind() == "redis" else None)
