"""Status callbacks as Twilio sends them: signed form POSTs, on every status change.

Twilio POSTs to a message's ``StatusCallback`` URL each time its status changes after
creation (never for the initial ``accepted``/``queued``), form-encoded, with
``X-Twilio-Signature``: base64(HMAC-SHA1(auth token, URL + every POST parameter's name
and value, sorted by name)). Written here from that description, not with the SDK, so
the tests' ``RequestValidator`` checks it independently.

Like the real thing they can be lost, duplicated, late and out of order
(``SimConfig.callback_*``); every attempt is recorded (``CallbackDispatcher.records``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from app.devtools.simulators.carrier.model import ERROR_TEXT, SimConfig, SimMessage


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature of a form POST of ``params`` to ``url``."""
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def callback_params(
    m: SimMessage, account_sid: str, status: str, code: int | None
) -> dict[str, str]:
    """The form Twilio posts for an outbound SMS status change."""
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "MessageSid": m.sid,
        "MessageStatus": status,
        "SmsSid": m.sid,
        "SmsStatus": status,
        "To": m.to,
    }
    sender = m.from_ or (None if status == "accepted" else m.service_sender)
    if sender:
        params["From"] = sender
    if m.messaging_service_sid:
        params["MessagingServiceSid"] = m.messaging_service_sid
    if code is not None:
        params["ErrorCode"] = str(code)
        params["ErrorMessage"] = ERROR_TEXT.get(code, "")
    return params


@dataclass(frozen=True)
class CallbackRecord:
    """One callback attempt: what was sent and what came of it."""

    sid: str
    status: str
    at: float  # epoch seconds of the attempt (or of the loss)
    outcome: str  # HTTP status as text, "lost", or an exception name
    duplicate: bool = False


class CallbackDispatcher:
    """Schedules a message's callbacks on the simulator's event loop."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.rng = random.Random(None if config.seed is None else config.seed + 1)
        self.records: list[CallbackRecord] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
            seed = self.config.seed
            self.rng = random.Random(None if seed is None else seed + 1)

    def snapshot(self) -> list[CallbackRecord]:
        with self._lock:
            return list(self.records)

    def message_created(self, m: SimMessage) -> None:
        """Schedule every status change after the initial one (on the loop's thread)."""
        if not m.status_callback or self._loop is None:
            return
        for offset, status, code in m.timeline()[1:]:
            self._schedule(m, status, code, m.created + offset, timeline=True)

    def status_forced(self, m: SimMessage, status: str, code: int | None) -> None:
        """A test forced a status: its callback, now (from any thread)."""
        loop = self._loop
        if not m.status_callback or loop is None:
            return
        loop.call_soon_threadsafe(self._schedule, m, status, code, time.time(), False)

    def _schedule(
        self, m: SimMessage, status: str, code: int | None, due: float, timeline: bool
    ) -> None:
        cfg, rng = self.config, self.rng
        if rng.random() < cfg.callback_loss:
            self._record(CallbackRecord(m.sid, status, due, "lost"))
            return
        delay = max(0.0, due - time.time()) + rng.uniform(0, max(0.0, cfg.callback_delay))
        if rng.random() < cfg.callback_reorder:
            delay += cfg.callback_reorder_delay  # the next status overtakes this one
        copies = 2 if rng.random() < cfg.callback_duplicate else 1
        for copy in range(copies):
            extra = copy * rng.uniform(0.0, 0.2)
            task = asyncio.ensure_future(
                self._post_later(m, status, code, delay + extra, timeline, bool(copy))
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post_later(
        self,
        m: SimMessage,
        status: str,
        code: int | None,
        delay: float,
        timeline: bool,
        duplicate: bool,
    ) -> None:
        await asyncio.sleep(delay)
        if timeline and m.forced is not None:
            return  # a test overrode the timeline: its own callback was sent instead
        assert m.status_callback is not None and self._session is not None
        params = callback_params(m, self.config.account_sid, status, code)
        headers = {
            "X-Twilio-Signature": twilio_signature(
                self.config.auth_token, m.status_callback, params
            ),
            "User-Agent": "TwilioProxy/1.1",
        }
        try:
            async with self._session.post(
                m.status_callback,
                data=params,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.config.callback_timeout),
            ) as response:
                outcome = str(response.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        self._record(CallbackRecord(m.sid, status, time.time(), outcome, duplicate))

    def _record(self, record: CallbackRecord) -> None:
        with self._lock:
            self.records.append(record)
