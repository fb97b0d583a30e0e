"""The in-process limiter: a sliding log of grants, for one process only."""

from __future__ import annotations

import threading
import time
from collections import deque


class LocalRateLimiter:
    """At most ``limit`` units in any ``window`` seconds, within this process.

    Same guarantee as ``RedisRateLimiter``; used where only one process calls the
    limited service (an operator's CLI run or the demo, without Redis).
    """

    def __init__(self, limit: float, window: float = 1.0) -> None:
        self.limit, self.window = limit, window
        self._log: deque[tuple[float, int]] = deque()
        self._used = 0
        self._lock = threading.Lock()

    def try_acquire(self, units: int = 1) -> float:
        # A request larger than the whole limit is charged the limit: it would never pass.
        weight = max(1, min(units, int(self.limit)))
        with self._lock:
            now = time.monotonic()
            while self._log and self._log[0][0] <= now - self.window:
                self._used -= self._log.popleft()[1]
            if self._used + weight <= self.limit:
                self._log.append((now, weight))
                self._used += weight
                return 0.0
            freed, need = 0, self._used + weight - self.limit
            for granted_at, w in self._log:
                freed += w
                if freed >= need:
                    return max(0.001, granted_at + self.window - now)
            return self.window
