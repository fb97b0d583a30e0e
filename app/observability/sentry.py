"""Sentry: on only when SENTRY_DSN is set; personal data scrubbed before anything leaves.

``init_sentry()`` must run before the Dramatiq broker is built: the Dramatiq
integration patches ``Broker.__init__`` to add its middleware (worker/broker.py calls
it first). The integration attaches the whole message (actor arguments!) to events
under ``contexts.dramatiq.data``; ``before_send`` replaces every argument that is not
provably an id or a date, and masks phone numbers, e-mails, names, balances and
message bodies everywhere else in the event (exception values, frame variables,
breadcrumbs, extras, tags, request data).
"""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from app.observability.scrub import (
    FILTERED,
    is_sensitive_key,
    mask_text,
    scrub_actor_argument,
    scrub_data,
)

logger = logging.getLogger(__name__)

_DATA_SECTIONS = ("extra", "request", "user")


def release() -> str:
    try:
        return f"premium-notify@{version('premium-notify')}"
    except PackageNotFoundError:
        return "premium-notify@unknown"


def scrub_event(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_send``: the event with personal data removed (never drops the event).

    Names cannot be recognised in free text, so values the event itself marks as
    personal (frame variables and extras under sensitive keys, filtered actor arguments)
    are collected first and then redacted wherever else they appear (exception message,
    breadcrumbs, log messages).
    """
    known = _sensitive_values(event)
    extra = event.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get("sys.argv"), list) and extra["sys.argv"]:
        # A command line may carry a secret or an account (the SDK adds sys.argv).
        argv = extra["sys.argv"]
        extra["sys.argv"] = [argv[0], *([FILTERED] * (len(argv) - 1))]
    for section in _DATA_SECTIONS:
        if section in event:
            event[section] = scrub_data(event[section])
    user = event.get("user")
    if isinstance(user, dict):  # an id is useful; anything else about a person is not
        event["user"] = {k: v for k, v in user.items() if k == "id"}
    if "tags" in event and isinstance(event["tags"], dict):
        event["tags"] = {k: mask_text(str(v)) for k, v in event["tags"].items()}
    for key in ("message", "transaction"):
        if isinstance(event.get(key), str):
            event[key] = mask_text(event[key])
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        for key in ("message", "formatted"):
            if isinstance(logentry.get(key), str):
                logentry[key] = mask_text(logentry[key])
        if "params" in logentry:
            logentry["params"] = [FILTERED for _ in logentry.get("params") or []]
    contexts = event.get("contexts")
    if isinstance(contexts, dict):
        _scrub_dramatiq_context(contexts.get("dramatiq"))
    for container in ("exception", "threads"):
        for item in (event.get(container) or {}).get("values") or []:
            if isinstance(item.get("value"), str):
                item["value"] = mask_text(item["value"])
            _scrub_frames(item.get("stacktrace"))
    breadcrumbs = event.get("breadcrumbs")
    if isinstance(breadcrumbs, dict):
        breadcrumbs["values"] = [scrub_breadcrumb(b) for b in breadcrumbs.get("values") or []]
    elif isinstance(breadcrumbs, list):
        event["breadcrumbs"] = [scrub_breadcrumb(b) for b in breadcrumbs]
    for span in event.get("spans") or []:
        if isinstance(span.get("description"), str):
            span["description"] = mask_text(span["description"])
        if "data" in span:
            span["data"] = scrub_data(span["data"])
    return _redact_everywhere(event, known) if known else event


_DECIMAL_INNER = re.compile(r"Decimal\('([^']*)'\)")


def _sensitive_values(event: dict[str, Any]) -> list[str]:
    found: set[str] = set()

    def add(value: Any, key: str) -> None:
        text = str(value).strip("'\"")
        if len(text) < 3 or text in (FILTERED, "None"):
            return
        found.add(text)
        found.update(_DECIMAL_INNER.findall(text))
        if "name" in key.lower():  # "Dana Levi" also appears as "Dana"
            found.update(w for w in text.split() if len(w) >= 3)

    def walk(obj: Any, key: str | None) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, k if is_sensitive_key(k) else key)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)
        elif key is not None and isinstance(obj, str | int | float):
            add(obj, key)

    walk(event.get("extra"), None)
    for container in ("exception", "threads"):
        for item in (event.get(container) or {}).get("values") or []:
            for frame in (item.get("stacktrace") or {}).get("frames") or []:
                walk(frame.get("vars"), None)
    data = ((event.get("contexts") or {}).get("dramatiq") or {}).get("data")
    if isinstance(data, dict):
        args = list(data.get("args") or []) + list((data.get("kwargs") or {}).values())
        for arg in args:
            if scrub_actor_argument(arg) == FILTERED:
                add(arg, "argument")
    return sorted(found, key=len, reverse=True)


def _redact_everywhere(value: Any, known: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _redact_everywhere(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_everywhere(v, known) for v in value]
    if isinstance(value, str):
        for secret in known:
            if secret in value:
                value = value.replace(secret, FILTERED)
    return value


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """``before_breadcrumb``: log lines, SQL and HTTP breadcrumbs, masked."""
    if isinstance(crumb.get("message"), str):
        crumb["message"] = mask_text(crumb["message"])
    if "data" in crumb:
        crumb["data"] = scrub_data(crumb["data"])
    return crumb


def _scrub_dramatiq_context(context: Any) -> None:
    if not isinstance(context, dict) or not isinstance(context.get("data"), dict):
        return
    data = context["data"]
    if "args" in data:
        data["args"] = [scrub_actor_argument(a) for a in data.get("args") or []]
    if "kwargs" in data:
        data["kwargs"] = {k: scrub_actor_argument(v) for k, v in (data.get("kwargs") or {}).items()}
    if "options" in data:
        data["options"] = scrub_data(data["options"])


def _scrub_frames(stacktrace: Any) -> None:
    if not isinstance(stacktrace, dict):
        return
    for frame in stacktrace.get("frames") or []:
        if "vars" in frame:
            frame["vars"] = scrub_data(frame["vars"])
        for key in ("context_line",):
            if isinstance(frame.get(key), str):
                frame[key] = mask_text(frame[key])
        for key in ("pre_context", "post_context"):
            if isinstance(frame.get(key), list):
                frame[key] = [mask_text(line) for line in frame[key]]


def init_sentry(*, transport: Any = None, dsn: str | None = None) -> bool:
    """Initialise the SDK if a DSN is configured; True when Sentry is on.

    ``transport`` exists for tests (a real SDK capturing into a list instead of HTTP).
    """
    from app.config import get_settings

    settings = get_settings()
    if dsn is None and settings.sentry_dsn is not None:
        dsn = settings.sentry_dsn.get_secret_value()
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.dramatiq import DramatiqIntegration
    from sentry_sdk.integrations.logging import LoggingIntegration

    options: dict[str, Any] = {
        "dsn": dsn,
        "environment": settings.environment,
        "release": settings.sentry_release or release(),
        "send_default_pii": False,
        "traces_sample_rate": settings.sentry_traces_sample_rate,
        # The message (actor arguments) is attached, then scrubbed: ids stay useful.
        "max_request_body_size": "medium",
        "before_send": scrub_event,
        "before_send_transaction": scrub_event,
        "before_breadcrumb": scrub_breadcrumb,
        "integrations": [
            DramatiqIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
        ],
    }
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    logger.info("Sentry on (environment %s)", settings.environment)
    return True
