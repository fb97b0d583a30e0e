"""SMS encoding and segment counting (docs/design.md decision 10).

GSM-7 (3GPP TS 23.038 default alphabet): 160 septets in a single message, 153 per part
of a concatenated one; the extension characters ``^{}\\[~]|€`` and form feed are sent
as ESC + char and cost 2 septets. Any character outside the alphabet switches the whole
message to UCS-2: 70 UTF-16 code units single, 67 per part; a character beyond U+FFFF is
a surrogate pair and costs 2. An escape sequence or a surrogate pair is never split
across two parts, so a part may carry one unit less than its nominal size; that is why
segments are counted by filling parts, not by dividing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The GSM 03.38 basic character set (one septet each).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: ESC + char, two septets each.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding(StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True)
class SegmentInfo:
    """``characters`` is in the encoding's units (septets or UTF-16 code units)."""

    encoding: Encoding
    characters: int
    segments: int

    def as_dict(self) -> dict[str, object]:
        return {
            "encoding": str(self.encoding),
            "characters": self.characters,
            "segments": self.segments,
        }


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def unit_costs(text: str) -> tuple[Encoding, list[int]]:
    """The encoding of ``text`` and the cost of each character in that encoding's units."""
    if is_gsm7(text):
        return Encoding.GSM7, [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return Encoding.UCS2, [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def _count_parts(costs: list[int], part_size: int) -> int:
    # Fill parts greedily; an indivisible unit (escape or surrogate pair) that does not
    # fit in what is left of a part starts the next one.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part_size:
            parts += 1
            used = 0
        used += cost
    return parts


def analyze(text: str) -> SegmentInfo:
    """Encoding, length in units and number of segments of ``text``."""
    # Fast path (the outbox analyses every message): when every character costs one
    # unit, which is all GSM-7 basic or all UCS-2 within the BMP, nothing can straddle
    # a part boundary and the count is a division.
    chars = set(text)
    if chars <= GSM7_BASIC:
        return _uniform(Encoding.GSM7, len(text), GSM7_SINGLE, GSM7_PART)
    if not chars <= GSM7_ALL and max(chars) <= "\uffff":
        return _uniform(Encoding.UCS2, len(text), UCS2_SINGLE, UCS2_PART)
    return analyze_by_units(text)


def _uniform(encoding: Encoding, total: int, single: int, part: int) -> SegmentInfo:
    segments = 0 if total == 0 else 1 if total <= single else -(-total // part)
    return SegmentInfo(encoding, total, segments)


def analyze_by_units(text: str) -> SegmentInfo:
    """``analyze`` by filling parts unit by unit (any text; the reference for the fast path)."""
    encoding, costs = unit_costs(text)
    total = sum(costs)
    single, part = (
        (GSM7_SINGLE, GSM7_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    )
    if total == 0:
        return SegmentInfo(encoding, 0, 0)
    segments = 1 if total <= single else _count_parts(costs, part)
    return SegmentInfo(encoding, total, segments)


def split_parts(text: str) -> list[str]:
    """The parts a carrier would send (used by tests and the simulator's sanity checks)."""
    encoding, costs = unit_costs(text)
    single, part = (
        (GSM7_SINGLE, GSM7_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    )
    if sum(costs) <= single:
        return [text] if text else []
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch, cost in zip(text, costs, strict=True):
        if used + cost > part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += cost
    parts.append("".join(current))
    return parts
