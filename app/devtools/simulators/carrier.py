"""A Twilio-compatible carrier simulator (the Messages subset the SDK uses).

``premium-notify simulate carrier --port N`` serves:

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form: To, From or
  MessagingServiceSid, Body, StatusCallback, ValidityPeriod; HTTP Basic auth checked);
* ``GET  .../Messages/{Sid}.json`` (fetch one);
* ``GET  .../Messages.json`` (list; To, DateSent, DateSent<, DateSent> filters; PageSize,
  Page/PageToken paging with ``next_page_uri``), newest first;

in Twilio's JSON shape (``SM…`` sids, RFC 2822 dates, ``num_segments`` as a string).
Statuses move queued -> sent -> delivered after configurable delays, computed from each
message's creation time, so a test that waits knows exactly what it will read.
Designated test numbers fail at create (``CREATE_FAILURES``) or at delivery
(``DELIVERY_FAILURES``). Faults: 429 rate, 500 rate, latency, accept-then-time-out
(the message is stored, the answer comes after ``accept_timeout_delay``), outage.
Every accepted message is recorded (``/_sim/messages``) so tests can count messages
per recipient and measure the accept rate.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from app.devtools.simulators.background import BackgroundServer
from app.notifications.segments import analyze

API = "/2010-04-01/Accounts/{account}"

# Twilio's magic test numbers, and what they do here.
CREATE_FAILURES: dict[str, int] = {
    "+15005550001": 21211,  # invalid number
    "+15005550004": 21610,  # unsubscribed (STOP)
    "+15005550009": 21614,  # not a mobile number
    "+15005550002": 21612,  # cannot route
    "+15005550003": 21408,  # no permission for the region
}
DELIVERY_FAILURES: dict[str, int] = {
    "+15005550010": 30003,  # unreachable handset
    "+15005550011": 30005,  # unknown handset
    "+15005550012": 30006,  # landline / unreachable carrier
}
ERROR_TEXT = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    21211: "The 'To' number is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region.",
    21602: "Message body is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable number.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class SimConfig:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "simulator-token"
    sent_after: float = 0.5  # seconds from creation to 'sent'
    delivered_after: float = 2.0  # seconds from creation to the final status
    latency: float = 0.0  # added to every create (seconds)
    rate_429: float = 0.0  # probability a create answers 429 / 20429 (nothing stored)
    rate_500: float = 0.0  # probability a create answers 500 (nothing stored)
    accept_timeout_rate: float = 0.0  # probability a create is stored, then answered late
    accept_timeout_delay: float = 30.0
    outage: bool = False  # every API call answers 503
    # Delivery tracking: after this many more list pages, the outage starts (mid-list).
    outage_after_list_pages: int | None = None
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise KeyError(key)
            setattr(self, key, value)


@dataclass
class SimMessage:
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    num_segments: int
    created: float  # epoch seconds
    sent_after: float
    delivered_after: float
    status_callback: str | None = None
    validity_period: int | None = None
    # A status set by a test (/_sim/force): failed, canceled, read, an unknown word, or a
    # late report contradicting an earlier final one. Wins over the timed progression.
    forced: tuple[str, int | None] | None = None

    def state(self, now: float) -> tuple[str, float | None, int | None]:
        """(status, date_sent as epoch or None, error_code) at time ``now``."""
        if self.forced is not None:
            status, code = self.forced
            return status, (None if status == "queued" else self.created + self.sent_after), code
        age = now - self.created
        if age < self.sent_after:
            return "queued", None, None
        sent = self.created + self.sent_after
        if age < self.delivered_after:
            return "sent", sent, None
        code = DELIVERY_FAILURES.get(self.to)
        return ("undelivered" if code else "delivered"), sent, code


@lru_cache(maxsize=4096)
def _utc(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


@lru_cache(maxsize=4096)
def _rfc2822_second(second: int) -> str:
    return format_datetime(_utc(second))


def _rfc2822(epoch: float | None) -> str | None:
    return None if epoch is None else _rfc2822_second(int(epoch))


@dataclass
class CarrierState:
    """Everything the simulator stored; safe to read from another thread."""

    config: SimConfig = field(default_factory=SimConfig)
    messages: dict[str, SimMessage] = field(default_factory=dict)
    by_to: dict[str, list[str]] = field(default_factory=dict)
    order: list[SimMessage] = field(default_factory=list)  # creation order
    accepted: list[tuple[float, str, int]] = field(default_factory=list)  # (time, sid, segs)
    requests: dict[str, int] = field(default_factory=dict)  # outcome -> count

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(self.config.seed)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.by_to.clear()
            self.order.clear()
            self.accepted.clear()
            self.requests.clear()
            self.rng = random.Random(self.config.seed)

    def count(self, outcome: str) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1

    def store(self, message: SimMessage) -> None:
        with self.lock:
            self.messages[message.sid] = message
            self.order.append(message)
            self.by_to.setdefault(message.to, []).append(message.sid)
            self.accepted.append((message.created, message.sid, message.num_segments))

    def force(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Make message ``sid`` report ``status`` (and ``error_code``) from now on."""
        with self.lock:
            self.messages[sid].forced = (status, error_code)

    def per_recipient(self) -> dict[str, int]:
        with self.lock:
            return {to: len(sids) for to, sids in self.by_to.items()}

    def accept_times(self) -> list[tuple[float, int]]:
        with self.lock:
            return [(t, segs) for t, _, segs in self.accepted]

    def view(self, m: SimMessage, now: float) -> dict[str, Any]:
        status, sent, code = m.state(now)
        account = self.config.account_sid
        updated = sent if status == "sent" else (m.created + m.delivered_after)
        if status == "queued":
            updated = m.created
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": m.body,
            "date_created": _rfc2822(m.created),
            "date_sent": _rfc2822(sent),
            "date_updated": _rfc2822(updated),
            "direction": "outbound-api",
            "error_code": code,
            "error_message": ERROR_TEXT.get(code) if code else None,
            "from": m.from_,
            "messaging_service_sid": m.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(m.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": m.sid,
            "status": status,
            "subresource_uris": {
                "media": f"{API.format(account=account)}/Messages/{m.sid}/Media.json"
            },
            "to": m.to,
            "uri": f"{API.format(account=account)}/Messages/{m.sid}.json",
        }


def _error(status: int, code: int | None, message: str | None = None) -> web.Response:
    text = message or ERROR_TEXT.get(code or 0, "error")
    payload = {
        "code": code,
        "message": text,
        "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None,
        "status": status,
    }
    return web.json_response(payload, status=status)


def _parse_sent_filter(value: str) -> datetime | date:
    value = value.strip()
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _matches_sent(sent: float | None, op: str, bound: datetime | date) -> bool:
    if sent is None:
        return False  # as at Twilio: a message not yet sent has no date_sent
    at = _utc(int(sent))
    left: datetime | date = at if isinstance(bound, datetime) else at.date()
    if op == "<":
        return left <= bound
    if op == ">":
        return left >= bound
    return at.date() == (bound.date() if isinstance(bound, datetime) else bound)


def max_in_any_second(accepts: list[tuple[float, int]]) -> int:
    """The most segments accepted in any one-second window [t, t + 1) of (time, segments)
    pairs: how a carrier would judge a segments-per-second limit."""
    accepts = sorted(accepts)
    best, j, total = 0, 0, 0
    for i in range(len(accepts)):
        while j < len(accepts) and accepts[j][0] < accepts[i][0] + 1.0:
            total += accepts[j][1]
            j += 1
        best = max(best, total)
        total -= accepts[i][1]
    return best


class CarrierSimulator:
    """The aiohttp application around a ``CarrierState``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.state = CarrierState(config or SimConfig())
        self._auth_ok: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}"
        app.router.add_post(base + "/Messages.json", self.create)
        app.router.add_get(base + "/Messages.json", self.list)
        app.router.add_get(base + "/Messages/{sid}.json", self.fetch)
        app.router.add_get("/_sim/messages", self.sim_messages)
        app.router.add_get("/_sim/stats", self.sim_stats)
        app.router.add_post("/_sim/config", self.sim_config)
        app.router.add_post("/_sim/reset", self.sim_reset)
        app.router.add_post("/_sim/force", self.sim_force)
        return app

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header in self._auth_ok:
            return True
        cfg = self.state.config
        expected = base64.b64encode(f"{cfg.account_sid}:{cfg.auth_token}".encode()).decode()
        if header == f"Basic {expected}" and request.match_info["account"] == cfg.account_sid:
            self._auth_ok.add(header)
            return True
        return False

    def _guard(self, request: web.Request) -> web.Response | None:
        if self.state.config.outage:
            self.state.count("outage")
            return _error(503, None, "Service Unavailable")
        if not self._authorized(request) or request.match_info["account"] != (
            self.state.config.account_sid
        ):
            self.state.count("unauthorized")
            return _error(401, 20003)
        return None

    async def create(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        cfg, state = self.state.config, self.state
        if cfg.latency:
            await asyncio.sleep(cfg.latency)
        roll = state.rng.random()
        if roll < cfg.rate_429:
            state.count("429")
            return _error(429, 20429)
        if roll < cfg.rate_429 + cfg.rate_500:
            state.count("500")
            return _error(500, None, "Internal Server Error")
        form = await request.post()
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        problem = (
            21604 if not to
            else 21211 if not E164.match(to)
            else 21606 if not sender and not service
            else 21602 if not body
            else 21617 if len(body) > 1600
            else CREATE_FAILURES.get(to)
        )  # fmt: skip
        if problem:
            state.count(str(problem))
            return _error(400, problem)
        validity = form.get("ValidityPeriod")
        message = SimMessage(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=str(sender) if sender else None,
            messaging_service_sid=str(service) if service else None,
            body=body,
            num_segments=analyze(body).segments,
            created=time.time(),
            sent_after=cfg.sent_after,
            delivered_after=max(cfg.delivered_after, cfg.sent_after),
            status_callback=str(form["StatusCallback"]) if "StatusCallback" in form else None,
            validity_period=int(str(validity)) if validity else None,
        )
        state.store(message)
        if roll >= 1 - cfg.accept_timeout_rate:
            state.count("accepted_late")
            await asyncio.sleep(cfg.accept_timeout_delay)
        else:
            state.count("accepted")
        return web.json_response(state.view(message, time.time()), status=201)

    async def fetch(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        message = self.state.messages.get(request.match_info["sid"])
        if message is None:
            return _error(404, 20404, "The requested resource was not found")
        return web.json_response(self.state.view(message, time.time()))

    async def list(self, request: web.Request) -> web.Response:
        cfg = self.state.config
        if cfg.outage_after_list_pages is not None:
            if cfg.outage_after_list_pages <= 0:
                cfg.outage, cfg.outage_after_list_pages = True, None
            else:
                cfg.outage_after_list_pages -= 1
        refused = self._guard(request)
        if refused is not None:
            return refused
        q = request.query
        try:
            page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
            page = int(q.get("Page", "0"))
            offset = int(q.get("PageToken", "PA0")[2:] or 0)
            filters = [
                (op, _parse_sent_filter(q[key]))
                for key, op in (("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">"))
                if key in q
            ]
        except ValueError as exc:
            return _error(400, 20001, f"Invalid parameter: {exc}")
        now = time.time()
        # Newest first by creation (Twilio's order), resuming at the cursor of the page
        # token: a page costs O(page size), not a sort of every stored message.
        with self.state.lock:
            if "To" in q:
                order = [self.state.messages[s] for s in self.state.by_to.get(q["To"], [])]
            else:
                order = self.state.order
            position = len(order) - 1 if offset == 0 else offset - 1
            chunk: list[SimMessage] = []
            has_next = False
            while position >= 0:
                m = order[position]
                if not filters or all(
                    _matches_sent(m.state(now)[1], op, bound) for op, bound in filters
                ):
                    if len(chunk) == page_size:
                        has_next = True  # a match remains: the next page starts here
                        break
                    chunk.append(m)
                position -= 1
        next_token = position + 1  # 1-based cursor: resume at this index, downwards
        base = API.format(account=self.state.config.account_sid) + "/Messages.json"
        keep = {k: v for k, v in q.items() if k not in {"Page", "PageToken", "PageSize"}}

        def uri(p: int, token: int) -> str:
            query = {**keep, "PageSize": page_size, "Page": p, "PageToken": f"PA{token}"}
            return f"{base}?{urlencode(query)}"

        start = page * page_size
        return web.json_response(
            {
                "messages": [self.state.view(m, now) for m in chunk],
                "end": start + len(chunk) - 1,
                "first_page_uri": uri(0, 0),
                "next_page_uri": uri(page + 1, next_token) if has_next else None,
                "previous_page_uri": None,  # cursor paging goes forward only
                "page": page,
                "page_size": page_size,
                "start": start,
                "uri": uri(page, offset),
            }
        )

    async def sim_messages(self, request: web.Request) -> web.Response:
        with self.state.lock:
            rows = [
                {"sid": m.sid, "to": m.to, "body": m.body, "accepted_at": m.created,
                 "num_segments": m.num_segments}
                for m in self.state.messages.values()
            ]  # fmt: skip
        return web.json_response(rows)

    async def sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": dict(self.state.requests), "messages": len(self.state.messages)}
        )

    async def sim_config(self, request: web.Request) -> web.Response:
        try:
            self.state.config.update(await request.json())
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": f"unknown or bad setting: {exc}"}, status=400)
        return web.json_response(asdict(self.state.config))

    async def sim_force(self, request: web.Request) -> web.Response:
        """{"sid": ..., "status": ..., "error_code": null}: see ``CarrierState.force``."""
        body = await request.json()
        try:
            self.state.force(str(body["sid"]), str(body["status"]), body.get("error_code"))
        except KeyError as exc:
            return web.json_response({"error": f"unknown message or field: {exc}"}, status=404)
        return web.json_response({"ok": True})

    async def sim_reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        return web.json_response({"ok": True})


class SimulatorThread(BackgroundServer):
    """Runs a simulator on 127.0.0.1 in a background thread (tests, benchmarks)."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.simulator = CarrierSimulator(config)
        super().__init__(self.simulator.app(), host, port)

    @property
    def state(self) -> CarrierState:
        return self.simulator.state

    def start(self) -> SimulatorThread:
        self.start_server()
        return self


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8089) -> None:
    """Blocking server for ``premium-notify simulate carrier`` (no access log: it has PII)."""
    web.run_app(CarrierSimulator(config).app(), host=host, port=port, access_log=None)
