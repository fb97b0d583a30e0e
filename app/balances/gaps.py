"""Gap repair: (active customer, day) pairs without a check are re-checked as of that day."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from app.balances.sources import BalanceSource


@dataclass
class GapRepairReport:
    gaps_found: int = 0
    filled: int = 0
    still_missing: int = 0
    still_missing_customer_ids: list[uuid.UUID] = field(default_factory=list)


def repair_gaps(
    start: date, end: date, *, source: BalanceSource | None = None
) -> GapRepairReport:
    """Find and re-check every (active customer, day) in [start, end] without a check."""
    raise NotImplementedError("gap repair is being written (issue 3)")
