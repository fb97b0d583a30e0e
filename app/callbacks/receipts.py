"""Reading a callback's form into a receipt, leaving personal data out.

What is stored of a form (``params``) is everything the carrier sent except the message
text and the customer's phone number (and the location Twilio derives from it): the
notification row already holds the number, and a receipt must not become a second copy
that GDPR erasure would have to find.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from app.campaign.keywords import normalise

SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
# Twilio's default opt-out, opt-in and help keywords and their Hebrew equivalents
# (app.campaign.keywords): a message that is exactly one of them (trimmed, any case) is
# one; anything else is not, and its text is never kept.
_STATUS_PRIVATE = frozenset({"Body", "To", "ChannelToAddress"})
_INBOUND_PRIVATE = frozenset({"Body", "From", "ChannelToAddress"})
_INBOUND_PRIVATE_PREFIXES = ("From", "MediaUrl", "MediaContentType")


class BadForm(ValueError):
    """The form lacks what a callback of its kind always carries (HTTP 400)."""


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _short(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


@dataclass(frozen=True)
class StatusReceipt:
    """A message status callback."""

    notification_id: uuid.UUID | None  # from the URL path (None: the id-less path)
    message_sid: str
    status: str  # lower case, as Twilio words it
    error_code: int | None
    error_message: str | None
    num_segments: int | None
    price: str | None
    price_unit: str | None
    params: dict[str, str]  # what is stored: no body, no customer number


def read_status(form: Mapping[str, str], notification_id: uuid.UUID | None) -> StatusReceipt:
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()
    if not SID.match(sid):
        raise BadForm("MessageSid missing or malformed")
    if not status or len(status) > 50:
        raise BadForm("MessageStatus missing or malformed")
    return StatusReceipt(
        notification_id=notification_id,
        message_sid=sid,
        status=status,
        error_code=_int(form.get("ErrorCode")),
        error_message=_short(form.get("ErrorMessage"), 255),
        num_segments=_int(form.get("NumSegments")),
        price=_short(form.get("Price"), 32),
        price_unit=_short(form.get("PriceUnit"), 8),
        params={k: v for k, v in form.items() if k not in _STATUS_PRIVATE},
    )


@dataclass(frozen=True)
class InboundReceipt:
    """A message a customer sent us. ``sender`` is used to find the customer, never kept."""

    message_sid: str
    sender: str
    keyword: str | None  # app.campaign.keywords.KEYWORDS, or None (the text is never kept)
    params: dict[str, str]


def keyword_of(form: Mapping[str, str]) -> str | None:
    """Twilio's OptOutType when it sent one (Advanced Opt-Out), else the body if it is
    exactly a keyword."""
    for candidate in (form.get("OptOutType"), form.get("Body")):
        word = normalise(candidate)
        if word is not None:
            return word
    return None


def read_inbound(form: Mapping[str, str]) -> InboundReceipt:
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not SID.match(sid):
        raise BadForm("MessageSid missing or malformed")
    sender = (form.get("From") or "").strip()
    if not sender:
        raise BadForm("From missing")
    params = {
        k: v
        for k, v in form.items()
        if k not in _INBOUND_PRIVATE and not k.startswith(_INBOUND_PRIVATE_PREFIXES)
    }
    return InboundReceipt(sid, sender, keyword_of(form), params)
