"""An actor for the real-worker observability test (loaded as an extra worker module)."""

from __future__ import annotations

import logging

import dramatiq

import worker.tasks  # noqa: F401  (the project's broker first)
from app.observability import metrics
from worker.arguments import SCHEMAS, Arguments

logger = logging.getLogger("tests.platform.observability_probe")


class ObsProbe(Arguments):
    n: int


SCHEMAS["obs_probe"] = ObsProbe  # workers run only actors with a schema (worker/arguments.py)


@dramatiq.actor(queue_name="maintenance", max_retries=0, actor_name="obs_probe")
def obs_probe(n: int) -> None:
    # A careless log line: the JSON formatter must mask the number.
    logger.info("probe %s texting +972501234567", n)
    metrics.RECONCILER_ACTIONS.labels(reconciler="obs_probe", action="noop").inc()
    if n < 0:
        raise ValueError("negative probe")
