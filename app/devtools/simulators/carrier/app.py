"""The simulator's HTTP API (aiohttp): Twilio's Messages endpoints and a test back door.

* ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form: To, From or
  MessagingServiceSid, Body, StatusCallback, ValidityPeriod; HTTP Basic auth checked);
* ``GET  .../Messages/{Sid}.json`` (fetch one, at once: no list lag);
* ``GET  .../Messages.json`` (list: To, From, DateSent, DateSent<, DateSent> filters;
  PageSize, Page, PageToken; newest first; only messages past their list lag);
* ``/_sim/messages``, ``/_sim/stats``, ``/_sim/callbacks``, ``POST /_sim/config``,
  ``/_sim/reset``, ``/_sim/force``: for tests and benchmarks.

Every error is Twilio's JSON (``code`` an integer, also for 500 and 503); bad input is
a 400, never a 500.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from urllib.parse import urlsplit

from aiohttp import web

from app.devtools.simulators.background import BackgroundServer
from app.devtools.simulators.carrier.callbacks import CallbackDispatcher
from app.devtools.simulators.carrier.listing import BadQuery, ListQuery, page_uri
from app.devtools.simulators.carrier.model import (
    API,
    CREATE_FAILURES,
    E164,
    ERROR_TEXT,
    SENDER_FAILURES,
    SERVICE_SID,
    SimConfig,
    SimMessage,
)
from app.devtools.simulators.carrier.state import CarrierState
from app.notifications.segments import analyze

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: int, message: str | None = None) -> web.Response:
    """Twilio's error body: ``{code, message, more_info, status}``, ``code`` an integer."""
    payload = {
        "code": code,
        "message": message or ERROR_TEXT.get(code, "error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(payload, status=status)


@web.middleware
async def _twilio_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """No plain-text error page ever: unknown routes 404, anything unexpected 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error(exc.status, 20404 if exc.status == 404 else 20001, exc.reason)
    except Exception:  # noqa: BLE001  (a simulator bug must still answer like Twilio)
        return error(500, 20500)


def _create_problem(form: dict[str, str]) -> int | None:
    """The Twilio error code of a create request, or None when it is acceptable."""
    to, body = form.get("To", ""), form.get("Body", "")
    sender, service = form.get("From"), form.get("MessagingServiceSid")
    callback, validity = form.get("StatusCallback"), form.get("ValidityPeriod")
    if not to:
        return 21604
    if not E164.match(to):
        return 21211
    if not sender and not service:
        return 21603
    if service and not SERVICE_SID.match(service):
        return 20001
    if sender and sender in SENDER_FAILURES:
        return SENDER_FAILURES[sender]
    if not body:
        return 21602
    if len(body) > 1600:
        return 21617
    if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36000):
        return 21624
    if callback is not None:
        parts = urlsplit(callback)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return 21609
    return CREATE_FAILURES.get(to)


class CarrierSimulator:
    """The aiohttp application around a ``CarrierState``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.state = CarrierState(config or SimConfig())
        self.callbacks = CallbackDispatcher(self.state.config)
        self.state.on_force = self.callbacks.status_forced
        self._auth_ok: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_twilio_errors])
        base = API
        app.router.add_post(base + "/Messages.json", self.create)
        app.router.add_get(base + "/Messages.json", self.list)
        app.router.add_get(base + "/Messages/{sid}.json", self.fetch)
        app.router.add_delete(base + "/Messages/{sid}.json", self.delete)
        app.router.add_get("/_sim/messages", self.sim_messages)
        app.router.add_get("/_sim/stats", self.sim_stats)
        app.router.add_get("/_sim/callbacks", self.sim_callbacks)
        app.router.add_post("/_sim/config", self.sim_config)
        app.router.add_post("/_sim/reset", self.sim_reset)
        app.router.add_post("/_sim/force", self.sim_force)
        app.on_startup.append(lambda _: self.callbacks.start())
        app.on_cleanup.append(lambda _: self.callbacks.stop())
        return app

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header in self._auth_ok:
            return True
        cfg = self.state.config
        expected = base64.b64encode(f"{cfg.account_sid}:{cfg.auth_token}".encode()).decode()
        if header == f"Basic {expected}":
            self._auth_ok.add(header)
            return True
        return False

    def _guard(self, request: web.Request) -> web.Response | None:
        if self.state.config.outage:
            self.state.count("outage")
            return error(503, 20503)
        if not self._authorized(request) or request.match_info["account"] != (
            self.state.config.account_sid
        ):
            self.state.count("unauthorized")
            return error(401, 20003)
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
            return error(429, 20429)
        if roll < cfg.rate_429 + cfg.rate_500:
            state.count("500")
            return error(500, 20500)
        try:
            form = {k: str(v) for k, v in (await request.post()).items()}
        except (ValueError, UnicodeDecodeError):
            return error(400, 20001, "The request body could not be read")
        problem = _create_problem(form)
        if problem:
            state.count(str(problem))
            return error(400, problem)
        message = self._new_message(form)
        state.store(message)
        self.callbacks.message_created(message)
        created_view = state.view(message, None)  # the initial status
        if roll < cfg.rate_429 + cfg.rate_500 + cfg.store_then_500_rate:
            state.count("stored_then_500")
            return error(500, 20500)
        if roll >= 1 - cfg.accept_timeout_rate:
            state.count("accepted_late")
            await asyncio.sleep(cfg.accept_timeout_delay)
        else:
            state.count("accepted")
        return web.json_response(created_view, status=201)

    def _new_message(self, form: dict[str, str]) -> SimMessage:
        cfg, rng = self.state.config, self.state.rng
        body, validity = form["Body"], form.get("ValidityPeriod")
        final: tuple[str, int | None] | None = None
        dice = rng.random()
        if dice < cfg.rate_undelivered:
            final = ("undelivered", 30003)
        elif dice < cfg.rate_undelivered + cfg.rate_late_failed:
            final = ("failed", 30008)
        stuck = rng.random() < cfg.rate_stuck_in_sent
        return SimMessage(
            sid="SM" + uuid.uuid4().hex,
            to=form["To"],
            from_=form.get("From") or None,
            messaging_service_sid=form.get("MessagingServiceSid") or None,
            body=body,
            num_segments=analyze(body).segments,
            created=time.time(),
            sent_after=cfg.sent_after,
            delivered_after=max(cfg.delivered_after, cfg.sent_after),
            status_callback=form.get("StatusCallback"),
            validity_period=int(validity) if validity else None,
            accepted_for=cfg.accepted_for,
            sending_after=cfg.sending_after,
            final=final,
            stuck=stuck,
            listed_after=cfg.list_lag + rng.uniform(0, max(0.0, cfg.list_lag_jitter)),
            service_sender=cfg.service_sender,
        )

    async def fetch(self, request: web.Request) -> web.Response:
        refused = self._guard(request)
        if refused is not None:
            return refused
        message = self.state.messages.get(request.match_info["sid"])
        if message is None:
            return error(404, 20404)
        return web.json_response(self.state.view(message, time.time()))

    async def delete(self, request: web.Request) -> web.Response:
        """DeleteMessage: 204 and the message is gone (fetch 404, lists skip it)."""
        refused = self._guard(request)
        if refused is not None:
            return refused
        if not self.state.delete(request.match_info["sid"]):
            return error(404, 20404)
        self.state.count("deleted")
        return web.Response(status=204)

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
        now = time.time()
        try:
            query = ListQuery.parse(q)
            page = self.state.page(query, now)
        except BadQuery as exc:
            return error(400, 20001, f"Invalid parameter: {exc}")
        base = API.format(account=cfg.account_sid) + "/Messages.json"
        size, number = query.page_size, query.page
        start = number * size
        nxt, prev = page.next_sid, page.previous_sid
        return web.json_response(
            {
                "messages": [self.state.view(m, now) for m in page.messages],
                "end": start + max(len(page.messages) - 1, 0),
                "first_page_uri": page_uri(base, q, size, 0, None),
                "next_page_uri": page_uri(base, q, size, number + 1, f"PA{nxt}") if nxt else None,
                "previous_page_uri": (
                    page_uri(base, q, size, max(number - 1, 0), f"PB{prev}") if prev else None
                ),
                "page": number,
                "page_size": size,
                "start": start,
                "uri": page_uri(base, q, size, number, query.token),
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

    async def sim_callbacks(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.callbacks.snapshot()])

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
        self.callbacks.reset()
        return web.json_response({"ok": True})


class SimulatorThread(BackgroundServer):
    """Runs a simulator on 127.0.0.1 in a background thread (tests, benchmarks)."""

    def __init__(self, config: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0):
        self.simulator = CarrierSimulator(config)
        super().__init__(self.simulator.app(), host, port)

    @property
    def state(self) -> CarrierState:
        return self.simulator.state

    @property
    def callbacks(self) -> CallbackDispatcher:
        return self.simulator.callbacks

    def start(self) -> SimulatorThread:
        self.start_server()
        return self


def serve(config: SimConfig, host: str = "127.0.0.1", port: int = 8089) -> None:
    """Blocking server for ``premium-notify simulate carrier`` (no access log: it has PII)."""
    web.run_app(CarrierSimulator(config).app(), host=host, port=port, access_log=None)
