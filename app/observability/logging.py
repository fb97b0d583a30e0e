"""Structured (JSON) logs with the correlation id, actor and message id; PII masked.

Every line is one JSON object::

    {"ts": "2025-01-31T06:00:00.123Z", "level": "INFO", "logger": "app.notifications.service",
     "message": "submitted to +97250***4567", "correlation_id": "…", "actor": "send_batch",
     "message_id": "…", "process": 12, "thread": "Thread-3"}

The context (correlation id, actor, message id) lives in ``contextvars``: the Dramatiq
middleware binds actor and message id around each message, services bind the run's
correlation id with ``log_context(correlation_id=…)``. Masking (``scrub.mask_text``) is
applied by the formatter to the message, the exception text and every ``extra`` field,
so a careless ``logger.info("to %s", phone)`` still cannot leak a phone number.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from app.observability.scrub import mask_text, scrub_data

CONTEXT_FIELDS = ("correlation_id", "actor", "message_id", "queue")
_context: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"pn_log_{name}", default=None) for name in CONTEXT_FIELDS
}

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def bind(**fields: object) -> dict[str, Any]:
    """Set context fields for the current thread/task; returns tokens for ``unbind``."""
    tokens: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in _context:
            raise ValueError(f"unknown log context field {name!r}")
        tokens[name] = _context[name].set(None if value is None else str(value))
    return tokens


def unbind(tokens: dict[str, Any]) -> None:
    for name, token in tokens.items():
        _context[name].reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """``with log_context(correlation_id=run.correlation_id): …``"""
    tokens = bind(**fields)
    try:
        yield
    finally:
        unbind(tokens)


def current_context() -> dict[str, str]:
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record; message, exception and extras masked."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_text(record.getMessage()),
        }
        payload.update(current_context())
        payload["process"] = record.process
        payload["thread"] = record.threadName
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
        if extras:
            payload["extra"] = scrub_data(_jsonable(extras))
        if record.exc_info:
            payload["exception"] = mask_text(self.formatException(record.exc_info))
        if record.stack_info:
            payload["stack"] = mask_text(self.formatStack(record.stack_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class MaskingTextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, masked like the JSON ones."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={v}" for k, v in current_context().items())
        line = mask_text(super().format(record))
        return f"{line} [{context}]" if context else line


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, default=str)
        return value
    except (TypeError, ValueError):
        return repr(value)


def configure_logging(
    level: str | int | None = None, *, json_format: bool | None = None, stream: TextIO | None = None
) -> None:
    """Install the masking formatter on the root logger's handlers (adding one if none).

    Existing handlers are kept (Dramatiq's worker processes log through a pipe to the
    main process): only their formatter is replaced, so every line is masked.
    """
    from app.config import get_settings

    settings = get_settings()
    level = level if level is not None else settings.log_level
    if json_format is None:
        json_format = settings.log_format == "json"
    formatter: logging.Formatter = JsonFormatter() if json_format else MaskingTextFormatter()
    root = logging.getLogger()
    root.setLevel(level if isinstance(level, int) else level.upper())
    if stream is not None or not root.handlers:
        root.addHandler(logging.StreamHandler(stream or sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(formatter)
    # Secret values from the settings are redacted verbatim wherever they appear.
    from app.observability.scrub import register_secrets

    register_secrets(
        s.get_secret_value()
        for s in (
            settings.database_url,
            settings.redis_url,
            settings.twilio_auth_token,
            settings.sentry_dsn,
            settings.core_banking_api_token,
        )
        if s is not None
    )
    logging.getLogger(__name__).debug("logging configured (pid %s)", os.getpid())
