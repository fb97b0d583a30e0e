"""Phone numbers: normalisation to E.164 and the mobile verdict, with ``phonenumbers``.

National numbers (``050-1234567``) are read in the bank's region (IL by default).
A number qualifies only if it is valid and its type is MOBILE (or FIXED_LINE_OR_MOBILE,
which some countries cannot tell apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from app.models.enums import PhoneStatus

_MOBILE_TYPES = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE}
E164_MAX = 16  # '+' and at most 15 digits (fits the seed's VARCHAR(20))


@dataclass(frozen=True, slots=True)
class PhoneVerdict:
    e164: str | None  # normalised number; None when it cannot be parsed or is invalid
    status: PhoneStatus
    reason: str | None = None  # why it is INVALID / NOT_MOBILE (no digits in it)

    @property
    def is_valid_mobile(self) -> bool:
        return self.status is PhoneStatus.MOBILE


def classify(raw: str | None, region: str = "IL") -> PhoneVerdict:
    """Normalise ``raw`` and say whether it is a valid mobile number."""
    if raw is None or not raw.strip():
        return PhoneVerdict(None, PhoneStatus.MISSING, "no phone number")
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except NumberParseException:
        return PhoneVerdict(None, PhoneStatus.INVALID, "unparseable phone number")
    if not phonenumbers.is_valid_number(number):
        return PhoneVerdict(None, PhoneStatus.INVALID, "not a valid phone number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if phonenumbers.number_type(number) not in _MOBILE_TYPES:
        return PhoneVerdict(e164, PhoneStatus.NOT_MOBILE, "not a mobile number")
    return PhoneVerdict(e164, PhoneStatus.MOBILE)
