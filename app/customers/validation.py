"""One CSV row of the customer file, validated into a ``CustomerRow`` or a reason.

A customer exists whatever their contact fields say. A row is rejected only when the
customer cannot be identified or the line cannot be read: no account number or name, a
field over its column's length, control characters, an unreadable ``is_active`` (the
account's status cannot be guessed: active would check and maybe text them, inactive
would hide them). A contact field that is missing or not valid is a warning: the
customer is imported, the value kept as given in ``phone_raw`` / ``email_raw`` so an
operator can correct it, ``phone_number`` holds only valid E.164 (seed 7.3) and
``email`` only a valid address (``email-validator``, no DNS look-ups). Phone numbers
are normalised with ``app.phones.classify`` (national numbers in the bank's region); a
customer without a valid mobile is checked daily like everyone and disqualified with
INVALID_PHONE. Reasons never repeat the offending value: they end up in files and
logs, and the values are personal data.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from app.models.enums import PhoneStatus
from app.phones import classify

COLUMNS = (
    "account_number",
    "first_name",
    "last_name",
    "email",
    "phone_number",
    "account_type",
    "is_active",
)
_TRUE = {"true", "t", "yes", "y", "1", ""}
_FALSE = {"false", "f", "no", "n", "0"}


PHONE_RAW_MAX = 50  # customers.phone_raw


class RowError(ValueError):
    """Why a row is rejected (safe to write to a rejects file: no personal data)."""


@dataclass(frozen=True, slots=True)
class CustomerRow:
    account_number: str
    first_name: str
    last_name: str
    email: str | None
    phone_number: str | None
    account_type: str | None
    is_active: bool
    phone_status: PhoneStatus
    phone_is_valid_mobile: bool
    phone_raw: str | None = None  # as given, when it is not a valid number
    email_raw: str | None = None  # as given, when it is not a valid address
    # (field, reason) of each contact field imported with a problem; no values.
    warnings: tuple[tuple[str, str], ...] = ()


def _text(value: str, column: str, max_len: int, *, required: bool) -> str | None:
    value = value.strip()
    if not value:
        if required:
            raise RowError(f"{column} is empty")
        return None
    if len(value) > max_len:
        raise RowError(f"{column} is longer than {max_len} characters")
    if any(ch in value for ch in "\t\n\r\x00"):
        raise RowError(f"{column} contains control characters")
    return value


def parse_row(values: dict[str, str], region: str) -> CustomerRow:
    """The row's customer; ``RowError`` only when it has no identity or cannot be read."""
    account = _text(values["account_number"], "account_number", 50, required=True)
    first = _text(values["first_name"], "first_name", 100, required=True)
    last = _text(values["last_name"], "last_name", 100, required=True)
    assert account is not None and first is not None and last is not None
    raw_email = _text(values["email"], "email", 255, required=False)
    raw_phone = _text(values["phone_number"], "phone_number", PHONE_RAW_MAX, required=False)
    account_type = _text(values["account_type"], "account_type", 50, required=False)
    active_raw = values["is_active"].strip().lower()
    if active_raw in _TRUE:
        active = True
    elif active_raw in _FALSE:
        active = False
    else:
        raise RowError("is_active is not true/false")
    warnings: list[tuple[str, str]] = []
    email, email_raw = raw_email, None
    if raw_email is not None:
        try:
            email = validate_email(raw_email, check_deliverability=False).normalized
        except EmailNotValidError:
            email, email_raw = None, raw_email
            warnings.append(("email", "email is not a valid address (kept in email_raw)"))
    verdict = classify(raw_phone, region)
    phone_raw = raw_phone if verdict.status is PhoneStatus.INVALID else None
    if verdict.status is PhoneStatus.INVALID:
        warnings.append(("phone_number", f"phone_number: {verdict.reason} (kept in phone_raw)"))
    elif verdict.status is not PhoneStatus.MOBILE:
        warnings.append(("phone_number", f"phone_number: {verdict.reason}"))
    return CustomerRow(
        account_number=account,
        first_name=first,
        last_name=last,
        email=email,
        phone_number=verdict.e164,
        account_type=account_type,
        is_active=active,
        phone_status=verdict.status,
        phone_is_valid_mobile=verdict.is_valid_mobile,
        phone_raw=phone_raw,
        email_raw=email_raw,
        warnings=tuple(warnings),
    )
