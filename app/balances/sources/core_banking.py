"""Core-banking HTTP adapter (JSON contract: docs/balances.md, "Core-banking API").

``POST {CORE_BANKING_URL}/v1/balances:batch`` with ``{"as_of_date": "YYYY-MM-DD",
"accounts": [...]}`` answers ``{"results": [{"account_number", "status": "ok" |
"not_found", "balance": "123.45", "currency": "ILS", "as_of_date"}]}``.

* batched (CORE_BANKING_BATCH_SIZE accounts per request), one pooled ``requests``
  session per source (keep-alive; CORE_BANKING_POOL_SIZE connections);
* a (connect, read) timeout on every request: ``requests`` has none by default;
* retries with exponential backoff on 429 (honouring Retry-After), 5xx and connection
  errors, through urllib3's ``Retry``; the request is a read, so repeating it is safe;
* an optional cross-worker limiter is asked before every request (``app.ratelimit``);
  when it keeps refusing, ``RateLimited`` tells the caller how long to back off (the
  actor turns it into ``dramatiq.Retry(delay=...)``, which burns no retry budget).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from app.balances.amounts import AmountError, parse_amount
from app.balances.sources.base import (
    Answer,
    Balance,
    Missing,
    MissingReason,
    SourceError,
    SourceNotConfigured,
)
from app.config import Settings
from app.observability.metrics import BALANCE_SOURCE_REQUEST_SECONDS, RATE_LIMIT_WAITS
from app.ratelimit import LocalRateLimiter, RateLimiter

BATCH_PATH = "/v1/balances:batch"


class RateLimited(SourceError):
    """The shared limiter refused for longer than the wait budget: back off ``delay`` s."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"core-banking rate limit: back off {delay:.1f}s")
        self.delay = delay


class CoreBankingSource:
    """``BalanceSource`` over the core-banking HTTP API."""

    name = "core_banking"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        batch_size: int = 500,
        max_retries: int = 4,
        pool_size: int = 4,
        limiter: RateLimiter | None = None,
        max_limiter_wait: float = 30.0,
        backoff_factor: float = 0.2,
    ) -> None:
        self.url = base_url.rstrip("/") + BATCH_PATH
        self.timeout = (min(timeout, 5.0), timeout)
        self.batch_size = batch_size
        self.limiter = limiter
        self.max_limiter_wait = max_limiter_wait
        retry = Retry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            backoff_factor=backoff_factor,
            backoff_max=10.0,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=frozenset({"POST"}),  # a read: safe to repeat
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_settings(
        cls, settings: Settings, limiter: RateLimiter | None = None
    ) -> CoreBankingSource:
        if not settings.core_banking_url:
            raise SourceNotConfigured(
                "CORE_BANKING_URL is not set (or BALANCE_SOURCE / --source file:PATH)"
            )
        token = settings.core_banking_api_token
        if limiter is None and settings.core_banking_rps > 0:
            limiter = LocalRateLimiter(settings.core_banking_rps, 1.0)
        return cls(
            settings.core_banking_url,
            token=token.get_secret_value() if token else None,
            timeout=settings.core_banking_timeout_seconds,
            batch_size=settings.core_banking_batch_size,
            max_retries=settings.core_banking_max_retries,
            pool_size=settings.core_banking_pool_size,
            limiter=limiter,
        )

    def fetch(self, accounts: Sequence[str], as_of: date) -> Mapping[str, Answer]:
        answers: dict[str, Answer] = {}
        for i in range(0, len(accounts), self.batch_size):
            answers.update(self._fetch_batch(accounts[i : i + self.batch_size], as_of))
        return answers

    def close(self) -> None:
        self.session.close()

    def _wait_for_limiter(self) -> None:
        if self.limiter is None:
            return
        waited = 0.0
        while (wait := self.limiter.try_acquire(1)) > 0:
            if waited == 0.0:
                RATE_LIMIT_WAITS.labels("core_banking").inc()
            if waited >= self.max_limiter_wait:
                raise RateLimited(delay=1.0 + waited / 10)
            pause = min(wait, self.max_limiter_wait)
            time.sleep(pause)
            waited += pause

    def _fetch_batch(self, batch: Sequence[str], as_of: date) -> dict[str, Answer]:
        self._wait_for_limiter()
        body = {"as_of_date": as_of.isoformat(), "accounts": list(batch)}
        started = time.perf_counter()
        try:
            response = self.session.post(self.url, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            # After urllib3's retries: the source is down. The caller retries the shard.
            raise SourceError(f"core banking unreachable: {type(exc).__name__}") from None
        finally:
            BALANCE_SOURCE_REQUEST_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        if response.status_code == 429 or response.status_code >= 500:
            raise SourceError(f"core banking answered HTTP {response.status_code} after retries")
        if response.status_code != 200:
            raise SourceError(f"core banking refused the request: HTTP {response.status_code}")
        try:
            payload = json.loads(response.content, parse_float=Decimal)
            results = payload["results"]
        except (ValueError, KeyError, TypeError):
            raise SourceError("core banking sent a malformed response") from None
        return parse_results(results, batch, as_of)


def parse_results(results: Any, batch: Sequence[str], as_of: date) -> dict[str, Answer]:
    """Map the API's result list to one answer per asked account.

    An account the API left out, or answered with something unusable, is Missing with the
    reason; a malformed entry never takes the rest of the batch down.
    """
    asked = set(batch)
    answers: dict[str, Answer] = {}
    for entry in results if isinstance(results, list) else []:
        if not isinstance(entry, dict):
            continue
        account = entry.get("account_number")
        if not isinstance(account, str) or account not in asked:
            continue
        answers[account] = _answer(account, entry, as_of)
    for account in batch:
        answers.setdefault(
            account, Missing(account, MissingReason.NOT_FOUND, "absent from the response")
        )
    return answers


def _answer(account: str, entry: dict[str, Any], as_of: date) -> Answer:
    status = entry.get("status")
    if status == "not_found":
        return Missing(account, MissingReason.NOT_FOUND)
    if status != "ok":
        return Missing(account, MissingReason.UNAVAILABLE, f"status {str(status)[:30]!r}")
    currency = entry.get("currency", "ILS")
    if currency != "ILS":
        return Missing(account, MissingReason.WRONG_CURRENCY, f"currency {str(currency)[:5]!r}")
    try:
        amount = parse_amount(entry.get("balance"))
    except AmountError as exc:
        return Missing(account, MissingReason.INVALID_BALANCE, str(exc))
    raw_date = entry.get("as_of_date", as_of.isoformat())
    try:
        source_date = date.fromisoformat(str(raw_date))
    except ValueError:
        return Missing(account, MissingReason.WRONG_DATE, "as_of_date is not a date")
    return Balance(account, amount, source_date)
