"""The process's rate limiters, built on the worker wing's Redis client.

With Redis (workers, and operator runs when REDIS_URL is set) every process shares one
limit per key; without it (stub broker: the demo, a CLI run with no Redis) the limit is
kept in this process. One limiter object per process and key: the limit itself lives in
Redis, the object only holds the registered script.
"""

from __future__ import annotations

import threading

from app.config import Settings, get_settings
from app.ratelimit import LocalRateLimiter, RateLimiter, RedisRateLimiter
from worker.resources import RedisNotConfigured, redis_client

SMS_SEGMENTS_KEY = "pn:ratelimit:sms-segments"
CARRIER_READS_KEY = "pn:ratelimit:carrier-reads"
CORE_BANKING_KEY = "pn:ratelimit:core-banking"

_lock = threading.Lock()
_cache: dict[tuple[str, float, float], RateLimiter] = {}


def limiter(key: str, limit: float, window: float, *, client: object = None) -> RateLimiter | None:
    """At most ``limit`` units per ``window`` seconds under ``key``; None when limit <= 0."""
    if limit <= 0:
        return None
    if client is not None:
        return RedisRateLimiter(client, key, limit=limit, window_seconds=window)
    with _lock:
        cached = _cache.get((key, limit, window))
        if cached is None:
            try:
                shared = redis_client()
            except RedisNotConfigured:  # an operator run without Redis: this process only
                shared = None
            cached = (
                RedisRateLimiter(shared, key, limit=limit, window_seconds=window)
                if shared is not None
                else LocalRateLimiter(limit, window)
            )
            _cache[(key, limit, window)] = cached
        return cached


def sms_segments(settings: Settings | None = None, client: object = None) -> RateLimiter | None:
    """SMS_MPS segments per second at the carrier, over 1 s + the jitter margin."""
    settings = settings or get_settings()
    window = 1.0 + settings.sms_rate_window_margin_seconds
    return limiter(SMS_SEGMENTS_KEY, settings.sms_mps, window, client=client)


def carrier_reads(settings: Settings | None = None, client: object = None) -> RateLimiter | None:
    """Carrier read calls (list pages, fetches): never eat the send budget (SMS_MPS)."""
    settings = settings or get_settings()
    return limiter(CARRIER_READS_KEY, settings.delivery_carrier_rps, 1.0, client=client)


def core_banking(settings: Settings | None = None, client: object = None) -> RateLimiter | None:
    """CORE_BANKING_RPS requests per second across every worker."""
    settings = settings or get_settings()
    return limiter(CORE_BANKING_KEY, settings.core_banking_rps, 1.0, client=client)
