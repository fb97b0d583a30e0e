"""An actor for the real-worker observability test (loaded as an extra worker module)."""

from __future__ import annotations

import logging

import dramatiq

import worker.tasks  # noqa: F401  (the project's broker first)
from app.observability import metrics
from worker.arguments import SCHEMAS, Arguments


class ProbeArguments(Arguments):
    n: int


# Workers refuse a message whose actor has no schema (worker/arguments.py): the probe's.
SCHEMAS["obs_probe"] = ProbeArguments

logger = logging.getLogger("tests.platform.observability_probe")


@dramatiq.actor(queue_name="maintenance", max_retries=0, actor_name="obs_probe")
def obs_probe(n: int) -> None:
    # A careless log line: the JSON formatter must mask the number.
    logger.info("probe %s texting +972501234567", n)
    metrics.RECONCILER_ACTIONS.labels(reconciler="obs_probe", action="noop").inc()
    if n < 0:
        raise ValueError("negative probe")
