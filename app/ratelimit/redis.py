"""The limiter shared by every process on one Redis: a sliding log in a Lua script.

Why not ``dramatiq.rate_limits.WindowRateLimiter``: it counts one unit per acquire and
buckets by whole seconds, so it can grant the full limit at 0.99 s and again at 1.01 s
(twice the limit inside one real second), and a 3-segment SMS would count as one. The
carrier counts segments over any second. ``sliding_log.lua`` keeps a log of grants,
weighted by units, plus a pacing clock (GCRA) that spreads grants evenly, timed by
Redis's own clock (workers' clocks may differ). Guarantee: the units granted in any
window of ``window_seconds`` never exceed the limit. For SMS the window is 1 s plus
``SMS_RATE_WINDOW_MARGIN_SECONDS``: the margin absorbs the jitter between a grant and the
carrier receiving the request (docs/sms.md).
"""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

_SCRIPT = resources.files("app.ratelimit").joinpath("sliding_log.lua").read_text("utf-8")


class RedisRateLimiter:
    """At most ``limit`` units in any ``window_seconds`` window, across all processes."""

    def __init__(self, client: Any, key: str, *, limit: float, window_seconds: float) -> None:
        self.key = key
        self.limit = max(1, int(limit))
        self.window_us = int(window_seconds * 1_000_000)
        self._script = client.register_script(_SCRIPT)

    def try_acquire(self, units: int = 1) -> float:
        """0.0 when granted, else the seconds until ``units`` could be.

        A request longer than the whole limit is charged the limit (it would otherwise
        never go out); with the default SMS_MAX_SEGMENTS of 3 that needs an MPS below 3.
        """
        weight = max(1, min(int(units), self.limit))
        granted, wait_us = self._script(
            keys=[self.key, self.key + ":tat"],
            args=[self.limit, self.window_us, weight, uuid.uuid4().hex],
        )
        return 0.0 if granted else max(0.001, int(wait_us) / 1_000_000)
