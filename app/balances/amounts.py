"""Exact money parsing: a balance is a finite decimal with at most two places, or nothing."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
# NUMERIC(18, 2): 16 digits before the point.
MAX_ABS = Decimal("9999999999999999.99")


class AmountError(ValueError):
    """The value is not a usable balance; the message says why (never echoes the value)."""


def parse_amount(raw: object) -> Decimal:
    """``raw`` (str, int or Decimal; never float) as a Decimal with two places.

    Floats are refused: a float has already lost the exact cents. More than two decimals
    is refused rather than rounded, because rounding would invent a value; so is
    exponent notation (``1e5``).
    """
    if isinstance(raw, bool) or isinstance(raw, float):
        raise AmountError("balance must be a decimal string, not a binary float")
    if isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if not text:
            raise AmountError("balance is empty")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise AmountError("balance is not a number") from None
    else:
        raise AmountError("balance is not a number")
    if not value.is_finite():
        raise AmountError("balance is not a finite number")
    # Range first: quantize() of a value with more digits than the context's precision
    # raises InvalidOperation (found by tests/balances/test_fuzz_balances.py).
    if abs(value) > MAX_ABS:
        raise AmountError("balance is out of range for NUMERIC(18,2)")
    if isinstance(raw, str) and ("e" in raw or "E" in raw):
        # "1e5" is a number to Decimal, but no bank writes a balance so: a misread column
        # or a spreadsheet's rendering, not a value to trust.
        raise AmountError("balance is in exponent notation")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and value != value.quantize(CENT):
        raise AmountError("balance has more than two decimals")
    return value.quantize(CENT)
