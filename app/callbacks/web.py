"""The receiver's ASGI application (Starlette).

Every callback request goes through the same gate, cheapest check first: the rate limit
(429), the size (413: ``Content-Length``, then the bytes actually read), the form
encoding (415/400), then the signature (403): ``X-Twilio-Signature`` checked with the
twilio SDK's ``RequestValidator`` against ``CALLBACK_PUBLIC_URL`` + the path and query
called (the URL the carrier signed: the receiver sits behind the bank's proxy, so its own
view of the URL is not the one signed). Only then is the database touched, in a worker
thread; the answer (204, or empty TwiML for inbound messages) follows the commit. Every
answer is counted (``pn_callback_requests_total``); nothing personal is logged.

``/healthz``: the process answers. ``/readyz``: the database answers and its schema is
at the head revision this code was built for (app/observability/health.py, shared with the
workers' and the scheduler's metrics servers).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from app.callbacks.inbound import INBOUND_HANDLERS, InboundHandler, handle_inbound
from app.callbacks.limits import TokenBucket
from app.callbacks.receipts import BadForm, read_inbound, read_status
from app.callbacks.service import handle_status
from app.callbacks.urls import INBOUND_PATH, STATUS_PATH, STATUS_PREFIX, signed_url
from app.config import ConfigError, Settings, get_settings
from app.db.session import SessionScope, session_scope
from app.observability.health import readiness
from app.observability.health import schema_head as schema_head  # re-exported (tests)
from app.observability.metrics import CALLBACK_REQUESTS, CALLBACK_SECONDS

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
FORM = "application/x-www-form-urlencoded"


class Refused(Exception):
    """A request turned away at the gate: its answer and the counter's label."""

    def __init__(self, status: int, answer: str, headers: dict[str, str] | None = None):
        super().__init__(answer)
        self.status, self.answer, self.headers = status, answer, headers or {}


class Gate:
    """Rate, size, encoding and signature checks shared by the callback endpoints."""

    def __init__(self, settings: Settings, auth_token: str, public_url: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.public_url = public_url
        self.bucket = TokenBucket(settings.callback_rate_per_second)
        self.max_body = settings.callback_max_body_bytes

    async def form(self, request: Request) -> dict[str, str]:
        if not self.bucket.take():
            raise Refused(429, "rate_limited", {"Retry-After": "1"})
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            raise Refused(400, "bad_request")
        if declared is not None and int(declared) > self.max_body:
            raise Refused(413, "too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise Refused(413, "too_large")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM:
            raise Refused(415, "bad_request")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise Refused(400, "bad_request") from None
        url = signed_url(self.public_url, request.url.path, request.url.query)
        signature = request.headers.get("x-twilio-signature", "")
        if not signature or not self.validator.validate(url, ImmutableMultiDict(pairs), signature):
            raise Refused(403, "forbidden")
        return dict(pairs)


def create_app(
    settings: Settings | None = None,
    *,
    scope: SessionScope = session_scope,
    inbound_handlers: Sequence[InboundHandler] = INBOUND_HANDLERS,
) -> Starlette:
    """The receiver; refuses to start without CALLBACK_PUBLIC_URL and TWILIO_AUTH_TOKEN."""
    settings = settings or get_settings()
    public = settings.callback_public_url or ""
    if not public:
        raise ConfigError("CALLBACK_PUBLIC_URL must be set (the URL the carrier calls)")
    parts = urlsplit(public)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError("CALLBACK_PUBLIC_URL must be an http(s) URL without query or fragment")
    if settings.twilio_auth_token is None:
        raise ConfigError("TWILIO_AUTH_TOKEN must be set (it keys the callback signatures)")
    gate = Gate(settings, settings.twilio_auth_token.get_secret_value(), public)
    ready_check = readiness(scope)  # app.observability.health: the one readiness check

    async def guarded(
        request: Request, endpoint: str, work: Callable[[dict[str, str]], Any], ok: Response
    ) -> Response:
        started = time.perf_counter()
        answer, response = "accepted", ok
        try:
            form = await gate.form(request)
            await run_in_threadpool(work, form)
        except Refused as refused:
            answer = refused.answer
            response = Response(status_code=refused.status, headers=refused.headers)
        except BadForm:
            answer, response = "bad_request", Response(status_code=400)
        except SQLAlchemyError as exc:
            log.error("callback not stored (%s): database unavailable", type(exc).__name__)
            answer, response = "unavailable", Response(status_code=503)
        CALLBACK_REQUESTS.labels(endpoint, answer).inc()
        CALLBACK_SECONDS.labels(endpoint).observe(time.perf_counter() - started)
        return response

    async def status(request: Request) -> Response:
        raw = request.path_params.get("notification_id")
        try:
            nid = uuid.UUID(raw) if raw is not None else None
        except ValueError:
            CALLBACK_REQUESTS.labels("status", "bad_request").inc()
            return Response(status_code=404)

        def work(form: dict[str, str]) -> None:
            handle_status(read_status(form, nid), scope=scope)

        return await guarded(request, "status", work, Response(status_code=204))

    async def inbound(request: Request) -> Response:
        def work(form: dict[str, str]) -> None:
            handle_inbound(read_inbound(form), scope=scope, handlers=inbound_handlers)

        ok = Response(EMPTY_TWIML, media_type="text/xml")
        return await guarded(request, "inbound", work, ok)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready, body = await run_in_threadpool(ready_check)
        return JSONResponse(body, 200 if ready else 503)

    return Starlette(
        routes=[
            Route(STATUS_PATH, status, methods=["POST"]),
            Route(STATUS_PREFIX, status, methods=["POST"]),  # by sid (no id in the URL)
            Route(INBOUND_PATH, inbound, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )
