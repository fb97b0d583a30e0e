"""The carrier rate limit shared by every worker: message segments per second, in Redis.

Why not ``dramatiq.rate_limits.WindowRateLimiter`` as is: it counts one unit per
acquire and buckets by whole seconds, so it can grant the full limit at 0.99 s and
again at 1.01 s: twice the limit inside one real second, and a 3-segment message would
count as one. The carrier counts segments over any second.

``SegmentRateLimiter`` is a Dramatiq ``RateLimiter`` (same backend, same
``acquire(raise_on_failure=False)`` contract, so waiting never raises, never burns a
retry and never reaches Sentry) whose ``_acquire`` runs one Lua script: a sliding log
of grants, weighted by segments, plus a pacing clock (GCRA) that spreads grants evenly,
timed by Redis's own clock (workers' clocks may differ). Guarantee: the segments
granted in any window of ``1 s + margin`` never exceed the limit. The margin absorbs
the jitter between a grant and the carrier receiving the request, so the carrier sees
at most the limit in any one-second window as long as that jitter stays under the
margin (docs/sms.md).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from dramatiq.rate_limits import RateLimiter
from dramatiq.rate_limits.backends import RedisBackend

from app.config import Settings, get_settings
from app.notifications.sending import LocalSegmentLimiter, SegmentLimiter

KEY = "pn:ratelimit:sms-segments"

# KEYS[1] the log (a sorted set: score = grant time in µs, member = "<uuid>:<weight>");
# KEYS[2] the pacing clock (GCRA "theoretical arrival time", µs).
# ARGV: limit, window (µs), weight, member id. Returns {1, 0} granted or {0, wait µs}.
SLIDING_LOG = """
local key, tat_key = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local weight = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = window / limit
-- Pacing: grants are spread at limit/window instead of a burst at each window start,
-- so requests do not queue at the carrier (queueing is jitter the margin must absorb).
-- A tolerance of a few segments lets a late-waking worker catch up.
local tat = tonumber(redis.call('GET', tat_key) or '0')
local tolerance = interval * math.min(limit, 4)
if tat - now > tolerance then
    return {0, math.ceil(tat - now - tolerance) + 1}
end
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
local used = 0
for i = 1, #entries, 2 do
    used = used + tonumber(string.match(entries[i], ':(%d+)$'))
end
if used + weight <= limit then
    redis.call('ZADD', key, now, ARGV[4] .. ':' .. weight)
    redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
    -- A worker that woke late may use a little of the time it lost (a credit of a few
    -- intervals) instead of losing it: the log above still caps every window.
    local base = math.max(tat, now - 4 * tolerance)
    redis.call('SET', tat_key, string.format('%d', base + weight * interval),
               'PX', math.ceil(window / 1000) + 1000)
    return {1, 0}
end
-- The strict bound: never more than the limit in any window.
local need = used + weight - limit
local freed = 0
for i = 1, #entries, 2 do
    freed = freed + tonumber(string.match(entries[i], ':(%d+)$'))
    if freed >= need then
        return {0, tonumber(entries[i + 1]) + window - now + 1}
    end
end
return {0, window}
"""


class SegmentRateLimiter(RateLimiter):
    """At most ``limit`` segments in any ``window_seconds`` window, across all processes."""

    def __init__(self, backend: RedisBackend, key: str, *, limit: int, window_seconds: float):
        super().__init__(backend, key)
        self.limit = max(1, int(limit))
        self.window_us = int(window_seconds * 1_000_000)
        self._script = backend.client.register_script(SLIDING_LOG)
        self._local = threading.local()

    def _acquire(self) -> bool:
        weight = getattr(self._local, "weight", 1)
        granted, wait_us = self._script(
            keys=[self.key, self.key + ":tat"],
            args=[self.limit, self.window_us, weight, uuid.uuid4().hex],
        )
        self._local.wait = int(wait_us) / 1_000_000
        return bool(granted)

    def _release(self) -> None:
        # A window limiter: used capacity expires with time, it is never handed back.
        pass

    def try_acquire(self, segments: int) -> float:
        """0.0 when ``segments`` were granted, else the seconds until they could be.

        A message longer than the whole limit is charged the limit (it would otherwise
        never go out); with the default MAX_SEGMENTS of 3 that needs an MPS below 3.
        """
        self._local.weight = max(1, min(int(segments), self.limit))
        with self.acquire(raise_on_failure=False) as acquired:
            return 0.0 if acquired else max(0.001, float(self._local.wait))


def segment_limiter(settings: Settings | None = None, client: Any = None) -> SegmentLimiter | None:
    """The limiter for this process: Redis when there is one, else in-process; None if off."""
    settings = settings or get_settings()
    if settings.sms_mps <= 0:
        return None
    window = 1.0 + settings.sms_rate_window_margin_seconds
    if client is None:
        from worker.broker import redis_client

        client = redis_client()
    if client is None and settings.redis_url is not None:
        import redis

        client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    if client is None:  # stub broker, no Redis: only this process sends
        return LocalSegmentLimiter(settings.sms_mps, window)
    return SegmentRateLimiter(
        RedisBackend(client=client), KEY, limit=int(settings.sms_mps), window_seconds=window
    )
