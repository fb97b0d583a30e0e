from __future__ import annotations

import pytest

from app.models.enums import PhoneStatus
from app.phones import classify


@pytest.mark.parametrize(
    ("raw", "e164", "status"),
    [
        ("050-7654321", "+972507654321", PhoneStatus.MOBILE),
        ("050-1234567", None, PhoneStatus.INVALID),  # unallocated block (phonenumbers metadata)
        ("+972 52 765 4321", "+972527654321", PhoneStatus.MOBILE),
        ("03-6123456", "+97236123456", PhoneStatus.NOT_MOBILE),  # Tel Aviv landline
        ("+44 7911 123456", "+447911123456", PhoneStatus.MOBILE),  # foreign mobile
        ("12345", None, PhoneStatus.INVALID),
        ("not a number", None, PhoneStatus.INVALID),
        ("", None, PhoneStatus.MISSING),
        (None, None, PhoneStatus.MISSING),
    ],
)
def test_classify(raw: str | None, e164: str | None, status: PhoneStatus) -> None:
    verdict = classify(raw)
    assert verdict.status is status
    assert verdict.e164 == e164
    assert verdict.is_valid_mobile is (status is PhoneStatus.MOBILE)
