"""The carrier client: ``twilio.rest.Client`` with a timeout, a base-URL rewrite, typed
errors and an error-code table (docs/design.md "twilio" traps; STYLE.md 5).

Every call is timed (``pn_carrier_request_seconds``) and every failure becomes one of
three typed errors, decided by a table rather than a chain of ifs:

* ``PermanentCarrierError``: the carrier refused the message for good (never retry);
* ``TransientCarrierError``: it was not accepted and may be retried after a backoff;
* ``AmbiguousCarrierError``: it may have been accepted (5xx, read timeout, a dropped
  connection after the request went out): ask the carrier before any resend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from app.config import Settings, get_settings
from app.observability.metrics import CARRIER_REQUEST_SECONDS

# The SDK logs every request's query string at INFO, and a list filter carries the
# recipient's phone number: keep it quiet whatever the root logger's level is.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)


class Disposition(StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    AMBIGUOUS = "ambiguous"


# Twilio error codes returned by message creation and what they mean for a resend.
CREATE_ERRORS: dict[int, tuple[Disposition, str]] = {
    20003: (Disposition.PERMANENT, "authentication failed"),
    20429: (Disposition.TRANSIENT, "too many requests"),
    21211: (Disposition.PERMANENT, "invalid 'To' phone number"),
    21408: (Disposition.PERMANENT, "no permission to send to this region"),
    21610: (Disposition.PERMANENT, "recipient unsubscribed (STOP)"),
    21611: (Disposition.TRANSIENT, "sender's queue is full"),
    21612: (Disposition.PERMANENT, "cannot route to this number"),
    21614: (Disposition.PERMANENT, "'To' is not a mobile number"),
    21617: (Disposition.PERMANENT, "message body too long"),
}
# Delivery-time error codes (a message's ``error_code`` after it was accepted).
DELIVERY_ERRORS: dict[int, str] = {
    30001: "queue overflow",
    30002: "account suspended",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "carrier violation (filtered)",
    30008: "unknown error",
}
FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})


def classify_http(status: int, code: int | None) -> Disposition:
    """The table first; then 429 transient, 5xx ambiguous, any other 4xx permanent."""
    if code is not None and code in CREATE_ERRORS:
        return CREATE_ERRORS[code][0]
    if status == 429:
        return Disposition.TRANSIENT
    if status >= 500:
        return Disposition.AMBIGUOUS
    if 400 <= status < 500:
        return Disposition.PERMANENT
    return Disposition.AMBIGUOUS


class CarrierError(Exception):
    """Base of the typed carrier errors. The message never holds a phone number."""

    disposition: Disposition = Disposition.AMBIGUOUS

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def code_label(self) -> str:
        """The code for a metric label or the ``error_code`` column."""
        if self.code is not None:
            return str(self.code)
        return f"http_{self.status}" if self.status else type(self).__name__


class PermanentCarrierError(CarrierError):
    disposition = Disposition.PERMANENT


class TransientCarrierError(CarrierError):
    disposition = Disposition.TRANSIENT


class AmbiguousCarrierError(CarrierError):
    disposition = Disposition.AMBIGUOUS


class CarrierConfigError(ValueError):
    """Credentials or sender missing."""


_ERROR_TYPES: dict[Disposition, type[CarrierError]] = {
    Disposition.PERMANENT: PermanentCarrierError,
    Disposition.TRANSIENT: TransientCarrierError,
    Disposition.AMBIGUOUS: AmbiguousCarrierError,
}


@dataclass(frozen=True)
class CarrierMessage:
    sid: str
    to: str
    body: str
    status: str
    num_segments: int
    error_code: int | None
    error_message: str | None
    date_created: datetime | None
    date_sent: datetime | None
    date_updated: datetime | None
    # What the message cost (Twilio: negative, filled in late; app.campaign.costs).
    price: str | None = None
    price_unit: str | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


def _naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError, OverflowError):
        return None


def _message(operation: str, m: Any) -> CarrierMessage:
    """``_from_instance``, with a field of the wrong type reported as an ambiguous answer."""
    try:
        return _from_instance(m)
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        raise AmbiguousCarrierError(
            f"{operation}: unreadable carrier message ({type(exc).__name__})"
        ) from None


def _from_instance(m: Any) -> CarrierMessage:
    # The SDK gives num_segments as a string ("1") and error_code as int or None.
    return CarrierMessage(
        sid=m.sid,
        to=m.to or "",
        body=m.body or "",
        status=str(m.status or ""),
        num_segments=int(m.num_segments or 0),
        error_code=int(m.error_code) if m.error_code not in (None, "") else None,
        error_message=m.error_message,
        date_created=_naive_utc(m.date_created),
        date_sent=_naive_utc(m.date_sent),
        date_updated=_naive_utc(m.date_updated),
        price=None if m.price is None else str(m.price),
        price_unit=None if m.price_unit is None else str(m.price_unit),
    )


class RewritingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends the SDK's requests to ``base_url`` (scheme, host and path prefix replaced).

    The SDK builds absolute ``https://api.twilio.com/...`` URLs, also for next pages;
    rewriting at the HTTP layer points every one of them at a Twilio-compatible server.
    """

    def __init__(self, base_url: str | None, timeout: float, pool_size: int = 10) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._base = urlsplit(base_url.rstrip("/")) if base_url else None

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if self._base is not None:
            parts = urlsplit(url)
            url = urlunsplit(
                (
                    self._base.scheme,
                    self._base.netloc,
                    self._base.path + parts.path,
                    parts.query,
                    parts.fragment,
                )
            )
        return super().request(method, url, *args, **kwargs)


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the carrier (safe to retry)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError"}
    return False


class CarrierClient:
    """One carrier account. Thread-safe enough for one thread; give each thread its own."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        pool_size: int = 10,
    ) -> None:
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.timeout = timeout
        self.http = RewritingHttpClient(base_url, timeout, pool_size)
        self.client = Client(account_sid, auth_token, http_client=self.http)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> CarrierClient:
        settings = settings or get_settings()
        if settings.twilio_account_sid is None or settings.twilio_auth_token is None:
            raise CarrierConfigError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set")
        options: dict[str, Any] = {
            "sender": settings.twilio_from,
            "messaging_service_sid": settings.twilio_messaging_service_sid,
            "base_url": settings.twilio_base_url,
            "timeout": settings.twilio_timeout_seconds,
        }
        options.update(overrides)
        return cls(
            settings.twilio_account_sid.get_secret_value(),
            settings.twilio_auth_token.get_secret_value(),
            **options,
        )

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        except TwilioRestException as exc:
            code = _int_or_none(exc.code)  # the carrier's JSON may carry any type here
            disposition = classify_http(int(exc.status), code)
            text = CREATE_ERRORS.get(code, (disposition, exc.msg or ""))[1] if code else exc.msg
            raise _ERROR_TYPES[disposition](
                f"{operation}: HTTP {exc.status} code {code}: {text}", status=exc.status, code=code
            ) from None
        except TwilioException as exc:
            # Not a TwilioRestException (a list page that was not 200, a service error):
            # the outcome of a create is unknown, a read can simply be repeated.
            status = getattr(exc.args[1], "status_code", None) if len(exc.args) > 1 else None
            raise AmbiguousCarrierError(f"{operation}: {exc.args[0]}", status=status) from None
        except requests.RequestException as exc:
            kind = TransientCarrierError if _never_sent(exc) else AmbiguousCarrierError
            raise kind(f"{operation}: {type(exc).__name__}") from None
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            # An answer the SDK cannot read (malformed JSON, wrong types; found by
            # tests/notifications/test_fuzz_carrier.py): a create may have been accepted
            # all the same.
            raise AmbiguousCarrierError(
                f"{operation}: unreadable carrier response ({type(exc).__name__})"
            ) from None
        finally:
            CARRIER_REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)

    def send(
        self,
        to: str,
        body: str,
        *,
        status_callback: str | None = None,
        validity_period: int | None = None,
    ) -> CarrierMessage:
        """Create one message; returns what the carrier answered (sid, status, segments)."""
        if not self.sender and not self.messaging_service_sid:
            raise CarrierConfigError("TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID must be set")
        kwargs: dict[str, Any] = {"to": to, "body": body}
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        else:
            kwargs["from_"] = self.sender
        if status_callback:
            kwargs["status_callback"] = status_callback
        if validity_period:
            kwargs["validity_period"] = validity_period
        return _message("create", self._call("create", self.client.messages.create, **kwargs))

    def warm_up(self) -> None:
        """Load the SDK's lazily imported modules and open a pooled connection.

        Called before the first rate-limited create: otherwise that create carries an
        import and a TCP/TLS handshake (tens of ms) between the limiter's grant and the
        carrier's clock, more than the limiter's margin (docs/sms.md, rate limit).
        """
        try:
            next(self.list_messages(to=self.sender or "", page_size=1, limit=1), None)
        except CarrierError:
            pass  # the first real call will report the problem

    def delete(self, sid: str) -> bool:
        """``DELETE .../Messages/{Sid}.json``: True (204), False (404: no such message)."""
        try:
            return bool(self._call("delete", self.client.messages(sid).delete))
        except PermanentCarrierError as exc:
            if exc.status == 404:
                return False
            raise

    def fetch(self, sid: str) -> CarrierMessage:
        return _message("fetch", self._call("fetch", self.client.messages(sid).fetch))

    def list_messages(
        self,
        *,
        to: str | None = None,
        date_sent: datetime | None = None,
        date_sent_after: datetime | None = None,
        date_sent_before: datetime | None = None,
        page_size: int = 50,
        limit: int | None = None,
    ) -> Iterator[CarrierMessage]:
        """Messages, newest first, following next_page_uri page by page."""
        kwargs: dict[str, Any] = {"page_size": page_size}
        for key, value in (
            ("to", to),
            ("date_sent", date_sent),
            ("date_sent_after", date_sent_after),
            ("date_sent_before", date_sent_before),
        ):
            if value is not None:
                kwargs[key] = value
        page = self._call("list", self.client.messages.page, **kwargs)
        yielded = 0
        while page is not None:
            for instance in page:
                yield _message("list", instance)
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            page = self._call("list", page.next_page)

    def list_pages_sent_on(
        self, day: date, *, page_size: int = 1000
    ) -> Iterator[list[CarrierMessage]]:
        """The messages whose DateSent is ``day`` (UTC), one list per carrier page.

        Page by page (delivery tracking): each page is one carrier call, so the caller can
        count calls, pace them with a rate limiter and commit what a page settled before
        asking for the next one. The filter is sent as Twilio documents it, YYYY-MM-DD.
        """
        page = self._call(
            "list", self.client.messages.page, date_sent=day.isoformat(), page_size=page_size
        )
        while page is not None:
            yield [_message("list", instance) for instance in page]
            page = self._call("list", page.next_page)

    def find_sent(self, to: str, body: str, since: datetime) -> CarrierMessage | None:
        """The message with this body sent to ``to`` since ``since`` (UTC), if any.

        Filters on ``date_created``, not Twilio's DateSent: a message the carrier has
        accepted but not yet handed on has no ``date_sent`` and would be missed. Our
        account sends one message per customer per month, so listing by recipient is
        a page or two.
        """
        horizon = since - timedelta(minutes=5)  # clock skew between us and the carrier
        # No early stop on the first old message: the list's order is by date_sent, and
        # a message with none yet may sit anywhere in it.
        for message in self.list_messages(to=to, page_size=100):
            created = message.date_created
            if message.body == body and (created is None or created >= horizon):
                return message
        return None
