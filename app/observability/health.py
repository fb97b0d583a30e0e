"""Liveness and readiness, in one place for every server (workers, scheduler, callbacks).

``/healthz``: the process answers. ``/readyz``: the database answers, its schema is at
the Alembic head this code was built for, and Redis answers (where the process uses it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory

from app.config import PROJECT_ROOT
from app.db.session import SessionScope
from app.observability.repository import schema_revision

logger = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, dict[str, Any]]]


@cache
def schema_head() -> str | None:
    """The newest Alembic revision shipped with this code (None: scripts not found)."""
    for folder in (PROJECT_ROOT / "alembic", Path.cwd() / "alembic"):
        if (folder / "versions").is_dir():
            return ScriptDirectory(str(folder)).get_current_head()
    return None


def readiness(scope: SessionScope, redis_ping: Callable[[], object] | None = None) -> Readiness:
    """A check: (ready, body) with what was found; never raises."""

    def check() -> tuple[bool, dict[str, Any]]:
        head = schema_head()
        body: dict[str, Any] = {"expected": head}
        ready = head is not None
        try:
            with scope() as session:
                current = schema_revision(session)
            body.update(database="ok", schema=current)
            ready = ready and current == head
        except Exception as exc:  # any failure to reach the database: not ready
            body["database"] = type(exc).__name__
            ready = False
        if redis_ping is not None:
            try:
                redis_ping()
                body["redis"] = "ok"
            except Exception as exc:
                body["redis"] = type(exc).__name__
                ready = False
        body["ready"] = ready
        return ready, body

    return check
