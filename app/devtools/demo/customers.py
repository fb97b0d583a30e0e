"""Demo customers: a deterministic CSV in the import format, with the mess of real files.

Hebrew and English names, Israeli mobile numbers written the ways people write them
(``052-7654321``, ``+972 52 765 4321``, ``0527654321``), a share of landlines (valid
numbers that can never qualify), malformed numbers (imported all the same, with a
warning and the number kept in ``phone_raw``: they are disqualified with INVALID_PHONE),
rows without a number, and inactive accounts. Everything follows from the
seed, so a run is reproducible and a test can recompute what must happen.

Numbers are drawn from the real Israeli ranges and re-drawn until ``phonenumbers``
agrees with the intended kind: not every 05x-xxxxxxx is an allocated mobile range.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.customers.validation import COLUMNS
from app.models.enums import PhoneStatus
from app.phones import classify


class PhoneKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    MALFORMED = "malformed"
    MISSING = "missing"


# Shares of the generated customers (the rest have a mobile number).
LANDLINE_SHARE = 0.08
MALFORMED_SHARE = 0.03
MISSING_SHARE = 0.02
INACTIVE_SHARE = 0.05
HEBREW_SHARE = 0.55

HEBREW_FIRST = (
    "נועה", "אביגיל", "תמר", "מאיה", "שירה", "יעל", "רחל", "מיכל", "דנה", "אורית",
    "דוד", "יוסף", "משה", "אברהם", "איתי", "אורי", "נדב", "עומר", "יונתן", "אריאל",
)  # fmt: skip
HEBREW_LAST = (
    "כהן", "לוי", "מזרחי", "פרץ", "ביטון", "דהן", "אברהם", "פרידמן", "אזולאי", "מלכה",
    "שפירא", "גולן", "בן דוד", "חדד", "עמר", "יוסף", "קליין", "אוחיון", "רוזן", "שטרן",
)  # fmt: skip
ENGLISH_FIRST = (
    "Daniel", "Sarah", "Michael", "Rebecca", "Jonathan", "Emily", "David", "Hannah",
    "Benjamin", "Olivia", "Adam", "Naomi", "Ethan", "Leah", "Samuel", "Abigail",
)  # fmt: skip
ENGLISH_LAST = (
    "Cohen", "Levy", "Goldberg", "Friedman", "Katz", "Rosen", "Shapiro", "Klein",
    "Miller", "Stern", "Weiss", "Green", "Baker", "Harris", "Young", "Abrams",
)  # fmt: skip
ACCOUNT_TYPES = ("private", "private", "private", "premium", "business")
MOBILE_PREFIXES = ("050", "052", "053", "054", "055", "058")
LANDLINE_PREFIXES = ("02", "03", "04", "08", "09")
MALFORMED = ("050-12", "12345", "0521234", "+972-5", "phone", "05X-1234567", "972")


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    account_number: str
    first_name: str
    last_name: str
    email: str | None
    phone_number: str
    account_type: str
    is_active: bool
    phone_kind: PhoneKind

    def csv_row(self) -> list[str]:
        return [
            self.account_number,
            self.first_name,
            self.last_name,
            self.email or "",
            self.phone_number,
            self.account_type,
            "true" if self.is_active else "false",
        ]


def account_number(seed: int, i: int) -> str:
    return f"DEMO{seed:03d}-{i:07d}"


def _mobile(rng: random.Random) -> str:
    while True:
        prefix = rng.choice(MOBILE_PREFIXES)
        rest = f"{rng.randrange(10**7):07d}"
        if classify(prefix + rest).status is PhoneStatus.MOBILE:
            break
    style = rng.randrange(3)
    if style == 0:
        return f"{prefix}-{rest}"
    if style == 1:
        return f"+972 {prefix[1:]} {rest[:3]} {rest[3:]}"
    return prefix + rest


def _landline(rng: random.Random) -> str:
    while True:
        number = f"{rng.choice(LANDLINE_PREFIXES)}-{rng.randrange(2_000_000, 10**7):07d}"
        if classify(number).status is PhoneStatus.NOT_MOBILE:
            return number


PHONE_MAKERS: dict[PhoneKind, Callable[[random.Random], str]] = {
    PhoneKind.MOBILE: _mobile,
    PhoneKind.LANDLINE: _landline,
    PhoneKind.MALFORMED: lambda rng: rng.choice(MALFORMED),
    PhoneKind.MISSING: lambda rng: "",
}


def _kind(rng: random.Random) -> PhoneKind:
    roll = rng.random()
    if roll < LANDLINE_SHARE:
        return PhoneKind.LANDLINE
    if roll < LANDLINE_SHARE + MALFORMED_SHARE:
        return PhoneKind.MALFORMED
    if roll < LANDLINE_SHARE + MALFORMED_SHARE + MISSING_SHARE:
        return PhoneKind.MISSING
    return PhoneKind.MOBILE


def generate(count: int, seed: int = 1) -> list[DemoCustomer]:
    """``count`` customers, the same ones for the same seed."""
    rng = random.Random(seed)
    customers: list[DemoCustomer] = []
    for i in range(1, count + 1):
        hebrew = rng.random() < HEBREW_SHARE
        if hebrew:
            first, last = rng.choice(HEBREW_FIRST), rng.choice(HEBREW_LAST)
            email = f"client{i}@example.co.il" if rng.random() < 0.5 else None
        else:
            first, last = rng.choice(ENGLISH_FIRST), rng.choice(ENGLISH_LAST)
            email = f"{first}.{last}{i}@example.com".lower()
        kind = _kind(rng)
        phone = PHONE_MAKERS[kind](rng)
        customers.append(
            DemoCustomer(
                account_number=account_number(seed, i),
                first_name=first,
                last_name=last,
                email=email,
                phone_number=phone,
                account_type=rng.choice(ACCOUNT_TYPES),
                is_active=rng.random() >= INACTIVE_SHARE,
                phone_kind=kind,
            )
        )
    return customers


def write_csv(customers: list[DemoCustomer], path: Path) -> Path:
    """The customer file exactly as a bank extract would arrive (UTF-8, header row)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(c.csv_row() for c in customers)
    return path


def composition(customers: list[DemoCustomer]) -> dict[str, int]:
    """What was generated (counts only: no personal data in the output)."""
    kinds = Counter(str(c.phone_kind) for c in customers)
    return {
        "customers": len(customers),
        "hebrew_names": sum(1 for c in customers if c.first_name in HEBREW_FIRST),
        "mobile": kinds[PhoneKind.MOBILE],
        "landline": kinds[PhoneKind.LANDLINE],
        "malformed": kinds[PhoneKind.MALFORMED],
        "no_number": kinds[PhoneKind.MISSING],
        "inactive": sum(1 for c in customers if not c.is_active),
    }
