"""Masking of personal data and secrets, shared by the JSON logs and Sentry.

Two tools: ``mask_text`` rewrites free text (phone numbers, e-mail addresses, money
amounts in ``Decimal('…')`` reprs, credentials in URLs, known secret values);
``scrub_data`` walks dicts/lists and replaces the values of sensitive *keys* outright
(a balance is just a number: only its key tells that it is personal).

Phone masking keeps the country/operator prefix and the last four digits so an
operator can still tell messages apart: ``+972501234567`` -> ``+97250***4567``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

FILTERED = "[Filtered]"

# Keys whose values are personal data or secrets, whatever the value looks like.
# Compared after lower-casing and stripping "_" / "-" (so "phoneNumber" == "phone_number").
SENSITIVE_KEYS = frozenset(
    k.replace("_", "")
    for k in (
        "phone",
        "phone_number",
        "phonenumber",
        "msisdn",
        "to",
        "from",
        "from_",
        "recipient",
        "e164",
        "first_name",
        "last_name",
        "full_name",
        "customer_name",
        "name",
        "email",
        "email_address",
        "balance",
        "balance_amount",
        "eob_balance",
        "min_balance",
        "amount",
        "body",
        "message_body",
        "text",
        "account_number",
        "address",
        "password",
        "passwd",
        "secret",
        "token",
        "auth_token",
        "api_token",
        "api_key",
        "authorization",
        "cookie",
        "dsn",
        "database_url",
        "redis_url",
        "twilio_auth_token",
    )
)

# E.164 (optionally with spaces/dashes) or an Israeli number without "+"
# (0XX-XXXXXXX, 972XXXXXXXXX). Not preceded/followed by word characters, so ids,
# UUID segments, dates and unix timestamps are left alone.
_PHONE_RE = re.compile(
    r"(?<![\w+\-.:/])"
    r"(?:\+\d(?:[ \-]?\d){7,14}|(?:00|972|0)[2-9]\d?-?\d{3}-?\d{4})"
    r"(?![\w\-:/]|\.\d)"
)
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@([\w-]+(?:\.[\w-]+)+)")
_DECIMAL_RE = re.compile(r"Decimal\('[^']*'\)")
_URL_CREDENTIALS_RE = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+@", re.I)
_BEARER_RE = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{8,}", re.I)
# key=value, key: value, key='value', "key": "value", PGPASSWORD=..., sslpassword=...: the
# value (quoted or bare) is masked, its quotes kept.
_KEY_VALUE_SECRET_RE = re.compile(
    r"""\b(\w*(?:password|passwd|secret|token|api_?key|signing_key))(['"]?\s*[=:]\s*)"""
    r"""('[^']*'|"[^"]*"|[^\s,;&'"]+)""",
    re.I,
)

_secrets_lock = threading.Lock()
_secret_values: tuple[str, ...] = ()


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values (tokens, DSNs, URLs with passwords) to redact verbatim."""
    global _secret_values
    fresh = {v for v in values if v and len(v) >= 6}
    with _secrets_lock:
        _secret_values = tuple(sorted(set(_secret_values) | fresh, key=len, reverse=True))


def mask_phone(raw: str) -> str:
    """``+972501234567`` -> ``+97250***4567``: at least three digits always hidden."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 8:
        return "***"
    keep = max(0, min(5, len(digits) - 7))
    return ("+" if raw.lstrip().startswith("+") else "") + digits[:keep] + "***" + digits[-4:]


def mask_email(match: re.Match[str]) -> str:
    return f"***@{match.group(1)}"


def _mask_key_value(match: re.Match[str]) -> str:
    value = match.group(3)
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group(1)}{match.group(2)}{quote}***{quote}"


def mask_url(url: str) -> str:
    """A database or Redis URL fit to print: the password and every ``*password*`` query
    parameter (libpq's ``password``, ``sslpassword``) shown as ``***``."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if colon else ''}@{hostport}"
    query = [
        (k, "***" if "password" in k.lower() else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/:,")))


def mask_text(text: str) -> str:
    """Mask personal data and secrets in free text (log messages, exception values)."""
    if not text:
        return text
    for secret in _secret_values:
        if secret in text:
            text = text.replace(secret, FILTERED)
    text = _URL_CREDENTIALS_RE.sub(r"\1***@", text)
    text = _BEARER_RE.sub(r"\1 ***", text)
    text = _KEY_VALUE_SECRET_RE.sub(_mask_key_value, text)
    text = _EMAIL_RE.sub(mask_email, text)
    text = _DECIMAL_RE.sub("Decimal('***')", text)
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)


def is_sensitive_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("_", "").replace("-", "").lstrip("'\"")
    return normalized in SENSITIVE_KEYS


def scrub_data(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with sensitive keys filtered and every string masked."""
    if depth > 12:  # pathological nesting: drop rather than recurse forever
        return FILTERED
    if isinstance(value, Mapping):
        return {
            k: (FILTERED if is_sensitive_key(k) and v is not None else scrub_data(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_data(v, depth + 1) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?([T ][\d:.+\-Z]+)?$")


def scrub_actor_argument(value: Any) -> Any:
    """Actor arguments: keep what is provably not personal, filter everything else.

    Messages carry ids and JSON primitives (docs/design.md), so ids (small ints, UUIDs),
    dates/months, booleans and None survive; any other string or number (a phone
    number, a balance serialised as a string or a float) becomes ``[Filtered]``.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 100_000_000 else FILTERED  # 9+ digits could be a phone
    if isinstance(value, str) and (_UUID_RE.match(value) or _ISO_DATE_RE.match(value)):
        return value
    if isinstance(value, list | tuple):
        return [scrub_actor_argument(v) for v in value]
    if isinstance(value, Mapping):
        return {
            k: FILTERED if is_sensitive_key(k) else scrub_actor_argument(v)
            for k, v in value.items()
        }
    return FILTERED
