"""One CSV row of the customer file, validated into a ``CustomerRow`` or a reason.

Phone numbers are normalised to E.164 (``app.phones.classify``; national numbers in the
bank's region). A number that does not parse is a rejected row; a valid number that is
not a mobile is kept, marked NOT_MOBILE (it can never qualify). Emails are checked with
``email-validator`` without DNS look-ups. Reasons never repeat the offending value:
they end up in files and logs, and the values are personal data.
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
    account = _text(values["account_number"], "account_number", 50, required=True)
    first = _text(values["first_name"], "first_name", 100, required=True)
    last = _text(values["last_name"], "last_name", 100, required=True)
    assert account is not None and first is not None and last is not None
    email = _text(values["email"], "email", 255, required=False)
    if email is not None:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError:
            raise RowError("email is not a valid address") from None
    verdict = classify(values["phone_number"], region)
    if verdict.status is PhoneStatus.INVALID:
        raise RowError(f"phone_number: {verdict.reason}")
    active_raw = values["is_active"].strip().lower()
    if active_raw in _TRUE:
        active = True
    elif active_raw in _FALSE:
        active = False
    else:
        raise RowError("is_active is not true/false")
    return CustomerRow(
        account_number=account,
        first_name=first,
        last_name=last,
        email=email,
        phone_number=verdict.e164,
        account_type=_text(values["account_type"], "account_type", 50, required=False),
        is_active=active,
        phone_status=verdict.status,
        phone_is_valid_mobile=verdict.is_valid_mobile,
    )
