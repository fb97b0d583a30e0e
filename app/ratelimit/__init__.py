"""Rate limiters: one protocol, an in-process and a Redis implementation.

Every limit the system keeps is "at most ``limit`` units in any window of ``window``
seconds": SMS segments per second at the carrier (``SMS_MPS``), carrier read calls
(``DELIVERY_CARRIER_RPS``), core-banking requests (``CORE_BANKING_RPS``). A limiter never
blocks and never raises: ``try_acquire(units)`` answers 0.0 when the units were granted,
else the seconds to wait before asking again, and the caller decides how to wait (a
sender sleeps or defers its batch, an actor retries later without burning its budget).

* ``LocalRateLimiter``: one process (the CLI or the demo without Redis).
* ``RedisRateLimiter``: every process sharing one Redis (the worker farm); one Lua
  script (``sliding_log.lua``) timed by Redis's own clock.

The worker wing builds the process's limiters on its Redis client (``worker/limits.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from app.ratelimit.local import LocalRateLimiter
from app.ratelimit.redis import RedisRateLimiter


class RateLimiter(Protocol):
    def try_acquire(self, units: int = 1) -> float:
        """Take ``units``: 0.0 when granted, else the seconds to wait before retrying."""
        ...


def wait_for(
    limiter: RateLimiter | None,
    units: int = 1,
    *,
    on_wait: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until ``limiter`` grants ``units`` (no limiter: at once); ``on_wait`` is called
    before each sleep (a metric). For callers that may block: pollers and reconcilers."""
    if limiter is None:
        return
    while (wait := limiter.try_acquire(units)) > 0:
        if on_wait is not None:
            on_wait()
        sleep(wait)


__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter", "wait_for"]
