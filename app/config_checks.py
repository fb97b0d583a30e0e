"""Checks of setting values that a type or a pattern cannot express (``app.config`` runs them).

Every process validates all of its settings when it starts: the CLI (its root callback),
the workers and the scheduler (``worker.broker`` on import, through
``require_valid_settings``). A bad value then fails at once with one line that names the
setting and says what is wrong, never later at send or schedule time. Messages never
repeat a secret (URLs with passwords, tokens).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError

if TYPE_CHECKING:
    from app.config import Settings

# periodiq's aliases (periodiq.CronSpec._named_spec).
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_ITEM = re.compile(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?")


def check_cron(spec: str) -> str:
    """A periodiq cron spec; periodiq itself accepts out-of-range values (``61``) that
    then never fire, and fails with an IndexError on a missing field."""
    text = spec.strip()
    if text.startswith("@"):
        if text not in CRON_ALIASES:
            raise ValueError(f"unknown cron alias (known: {', '.join(CRON_ALIASES)})")
        return spec
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"a cron spec has 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    for field, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        _check_cron_field(field, name, low, high)
    return spec


def _check_cron_field(field: str, name: str, low: int, high: int) -> None:
    if name == "day of week":
        for number, day in enumerate(_WEEKDAYS):
            field = field.lower().replace(day, str(number))
    for item in field.split(","):
        match = _CRON_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"{name} field {item!r} is not cron syntax (e.g. 5, 1-4, */3)")
        numbers = [int(g) for g in match.group(2, 3) if g is not None]
        for n in numbers:
            if not low <= n <= high:
                raise ValueError(f"{name} {n} is outside {low}-{high}")
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            raise ValueError(f"{name} range {item!r} runs backwards")
        if match.group(4) is not None and int(match.group(4)) == 0:
            raise ValueError(f"{name} step 0 in {item!r}")


def check_kick_time(value: str) -> str:
    """A scheduled local time (HH:MM, its pattern checked first) outside 00:00-02:59."""
    if int(value[:2]) < 3:
        raise ValueError("choose 03:00 or later: DST skips or repeats 00:00-02:59")
    return value


def check_kick_days(value: str) -> str:
    """The cron day-of-month field of the qualification kick (``1``, ``1-3``)."""
    _check_cron_field(value, "day of month", 1, 31)
    return value


def check_send_window(value: str) -> str:
    # The notifications stage owns the rule's grammar; parse it exactly as sending will.
    from app.notifications.window import WindowError, parse_window

    try:
        intervals = parse_window(value)
    except WindowError as exc:
        raise ValueError(str(exc)) from None
    if not intervals:
        raise ValueError("no rule: SMS could never be sent (e.g. 'sun-thu 09:00-20:00')")
    return value


def check_region(value: str) -> str:
    import phonenumbers

    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a phone region (ISO 3166 code such as IL)")
    return value.upper()


def check_language(value: str) -> str:
    if value.lower() not in ("he", "en"):
        raise ValueError("choose he or en")
    return value.lower()


def check_log_level(value: str) -> str:
    level = value.upper()
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError("choose DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


def check_http_url(value: str | None) -> str | None:
    # Empty means unset (compose passes ${NAME:-} through as an empty variable).
    if value is None or not value.strip():
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    return value


def check_database_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value.get_secret_value())
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL (postgresql://user@host:5432/name)") from None
    if url.get_backend_name() != "postgresql":
        raise ValueError("not a PostgreSQL URL (postgresql://user@host:5432/name)")
    return value


def check_redis_url(value: SecretStr | None) -> SecretStr | None:
    if value is None:
        return None
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError("not a Redis URL (redis://host:6379/0, rediss://..., unix://...)")
    return value


def check_signing_key(value: SecretStr | None) -> SecretStr | None:
    """BROKER_SIGNING_KEY: comma-separated keys of 32 characters or more (the first signs)."""
    if value is None:
        return None
    keys = [k.strip() for k in value.get_secret_value().split(",")]
    if not keys or any(len(k) < 32 for k in keys):
        raise ValueError("each key needs 32 characters or more (e.g. openssl rand -hex 32)")
    return value


# Field name -> check; app.config registers one validator for all of them.
FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "qualification_kick_time": check_kick_time,
    "retention_kick_time": check_kick_time,
    "partitions_kick_time": check_kick_time,
    "balance_kick_time": check_kick_time,
    "balance_gap_repair_time": check_kick_time,
    "backup_time": check_kick_time,
    "delivery_poll_cron": check_cron,
    "qualification_kick_days": check_kick_days,
    "sms_send_window": check_send_window,
    "default_phone_region": check_region,
    "sms_template_language": check_language,
    "log_level": check_log_level,
    "twilio_base_url": check_http_url,
    "core_banking_url": check_http_url,
    "sms_status_callback_url": check_http_url,
    "database_url": check_database_url,
    "redis_url": check_redis_url,
    "broker_signing_key": check_signing_key,
}


def check_settings(settings: Settings) -> None:
    """Checks that need several settings: the SMS templates against SMS_MAX_SEGMENTS,
    production's transport (the core-banking API's bearer token never over plain http)."""
    from app.notifications.templates import TemplateError, get_template

    if settings.is_production() and (settings.core_banking_url or "").startswith("http://"):
        raise ValueError("CORE_BANKING_URL: must be https:// in production (a bearer token)")

    for name in ("he", "en"):
        if name == settings.sms_template_language or getattr(settings, f"sms_template_{name}"):
            try:
                get_template(name, settings)
            except TemplateError as exc:
                raise ValueError(f"SMS_TEMPLATE_{name.upper()}: {exc}") from None


# The settings' patterns an operator meets most, in words.
_PATTERN_WORDS = {
    r"^([01]\d|2[0-3]):[0-5]\d$": "expected a local time HH:MM (00:00-23:59)",
    r"^(http|file:.+)$": "expected 'http' or 'file:PATH'",
}


def describe_invalid(exc: ValidationError) -> str:
    """One line for an operator: every invalid setting, by its variable name, and why."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        pattern = (error.get("ctx") or {}).get("pattern")
        if error["type"] == "string_pattern_mismatch" and pattern in _PATTERN_WORDS:
            message = _PATTERN_WORDS[pattern]
        parts.append(f"{name}: {message}" if name else message)
    return "invalid setting " + "; ".join(parts)


def require_valid_settings() -> None:
    """Load the settings, or print one line and exit 2 (the workers' and scheduler's start:
    a traceback from deep inside an import says less than the setting's name)."""
    from app.config import get_settings

    try:
        get_settings()
    except ValidationError as exc:
        sys.stderr.write(f"error: {describe_invalid(exc)}\n")
        raise SystemExit(2) from None
