"""A core-banking balance API simulator (the contract in docs/balances.md).

``premium-notify simulate core-banking --port N`` serves ``POST /v1/balances:batch``.
Balances are deterministic: a function of (seed, account, date) in integer agorot, so a
test or benchmark can compute exactly what the system must have stored
(``balance_for``). Account profiles: about a third comfortably above 15,000 NIS every
day, a tenth hovering around it, a few overdrawn at times, the rest below. A share of
accounts (``missing_rate``, chosen by hash, stable across requests) is unknown to the
bank (``not_found``); ``missing_accounts`` names more. Faults: latency, a share of
requests answered 500 or 429 (with Retry-After), a full outage (503).
Control: ``GET/POST /_sim/config``, ``GET /_sim/stats``, ``POST /_sim/reset``.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web

from app.devtools.simulators.background import BackgroundServer

BATCH_PATH = "/v1/balances:batch"
MAX_BATCH = 5000
DEFAULT_PROFILES = (35, 45, 50)


@dataclass
class CoreBankingConfig:
    seed: int = 1
    token: str | None = None  # when set, requests must carry "Authorization: Bearer <token>"
    latency: float = 0.0  # seconds added to every batch request
    error_rate: float = 0.0  # share of requests answered 500
    rate_429: float = 0.0  # share of requests answered 429
    missing_rate: float = 0.0  # share of accounts (by hash) the bank does not know
    missing_accounts: list[str] = field(default_factory=list)
    outage: bool = False
    # Cumulative percentages of the account profiles: premium, around the threshold,
    # sometimes overdrawn (the rest: below). The demo widens the middle band.
    profiles: list[int] = field(default_factory=lambda: list(DEFAULT_PROFILES))

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if key not in self.__dataclass_fields__:
                raise KeyError(key)
            setattr(self, key, value)


def _hash(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def is_missing(seed: int, account: str, missing_rate: float) -> bool:
    return (_hash(seed, "missing", account) % 1_000_000) < missing_rate * 1_000_000


def balance_for(
    seed: int, account: str, day: date, profiles: Sequence[int] = DEFAULT_PROFILES
) -> Decimal:
    """The deterministic end-of-day balance of ``account`` on ``day`` (two decimals).

    ``profiles`` are the cumulative percentages (premium, around the threshold,
    sometimes overdrawn) that pick an account's profile by its hash.
    """
    premium, around, overdrawn = profiles
    profile = _hash(seed, account)
    noise = _hash(seed, account, day.isoformat())
    kind = profile % 100
    if kind < premium:  # premium: 20,000-200,000, +/-10 % a day: never below 18,000
        base = 2_000_000 + (profile >> 8) % 18_000_000
        cents = base + (noise % (base // 5 + 1)) - base // 10
    elif kind < around:  # around the threshold: 14,000-17,000, +/-1,500 a day
        base = 1_400_000 + (profile >> 8) % 300_000
        cents = base + (noise % 300_001) - 150_000
    elif kind < overdrawn:  # sometimes overdrawn: -2,000..3,000, +/-1,000 a day
        base = -200_000 + (profile >> 8) % 500_000
        cents = base + (noise % 200_001) - 100_000
    else:  # everyone else: 0-14,000
        cents = (profile >> 8) % 1_400_000 + (noise % 100)
    return Decimal(cents).scaleb(-2)


class CoreBankingSimulator:
    def __init__(self, config: CoreBankingConfig | None = None) -> None:
        self.config = config or CoreBankingConfig()
        self.stats: Counter[str] = Counter()
        self.answered_at: list[float] = []  # wall-clock time of every 200 (rate checks)
        self._dice = random.Random(self.config.seed)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post(BATCH_PATH, self.batch)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/_sim/config", self.get_config)
        app.router.add_post("/_sim/config", self.set_config)
        app.router.add_get("/_sim/stats", self.get_stats)
        app.router.add_post("/_sim/reset", self.reset)
        return app

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": not self.config.outage})

    def _fault(self) -> web.Response | None:
        c = self.config
        if c.outage:
            self.stats["503"] += 1
            return web.json_response({"error": "service unavailable"}, status=503)
        roll = self._dice.random()
        if roll < c.error_rate:
            self.stats["500"] += 1
            return web.json_response({"error": "internal error"}, status=500)
        if roll < c.error_rate + c.rate_429:
            self.stats["429"] += 1
            return web.json_response(
                {"error": "too many requests"}, status=429, headers={"Retry-After": "0"}
            )
        return None

    async def batch(self, request: web.Request) -> web.Response:
        c = self.config
        if c.token and request.headers.get("Authorization") != f"Bearer {c.token}":
            self.stats["401"] += 1
            return web.json_response({"error": "unauthorized"}, status=401)
        if c.latency:
            await asyncio.sleep(c.latency)
        fault = self._fault()
        if fault is not None:
            return fault
        try:
            body = await request.json()
            day = date.fromisoformat(body["as_of_date"])
            accounts = body["accounts"]
            if not isinstance(accounts, list) or len(accounts) > MAX_BATCH:
                raise ValueError("accounts must be a list of at most 5000")
        except (ValueError, KeyError, TypeError) as exc:
            self.stats["400"] += 1
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        named_missing = set(c.missing_accounts)
        results: list[dict[str, Any]] = []
        for account in accounts:
            account = str(account)
            if account in named_missing or is_missing(c.seed, account, c.missing_rate):
                results.append({"account_number": account, "status": "not_found"})
                self.stats["not_found"] += 1
                continue
            results.append(
                {
                    "account_number": account,
                    "status": "ok",
                    "balance": str(balance_for(c.seed, account, day, c.profiles)),
                    "currency": "ILS",
                    "as_of_date": day.isoformat(),
                }
            )
        self.stats["200"] += 1
        self.answered_at.append(time.time())
        self.stats["accounts"] += len(accounts)
        return web.json_response({"as_of_date": day.isoformat(), "results": results})

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(asdict(self.config))

    async def set_config(self, request: web.Request) -> web.Response:
        try:
            self.config.update(await request.json())
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"unknown or bad setting: {exc}"}, status=400)
        return web.json_response(asdict(self.config))

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(dict(self.stats))

    async def reset(self, request: web.Request) -> web.Response:
        self.stats.clear()
        self.answered_at.clear()
        return web.json_response({"ok": True})


class CoreBankingThread(BackgroundServer):
    """Runs the simulator on 127.0.0.1 in a background thread (tests, benchmarks)."""

    def __init__(self, config: CoreBankingConfig | None = None, port: int = 0) -> None:
        self.simulator = CoreBankingSimulator(config)
        super().__init__(self.simulator.app(), "127.0.0.1", port)

    @property
    def config(self) -> CoreBankingConfig:
        return self.simulator.config

    def start(self) -> CoreBankingThread:
        self.start_server()
        return self


def serve(config: CoreBankingConfig, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Blocking server for ``premium-notify simulate core-banking`` (no access log)."""
    web.run_app(CoreBankingSimulator(config).app(), host=host, port=port, access_log=None)
