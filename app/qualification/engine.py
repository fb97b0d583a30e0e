"""Deciding a month: the set-based statements' results as tallies.

The statements themselves (docs/design.md decisions 4 and 6) are in
``app.qualification.repository.decisions``; this module prepares their transaction and
reads their counts. The caller owns the transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.db.audit import set_audit_context
from app.months import Month
from app.qualification.months import REASON_ORDER
from app.qualification.repository import decisions


@dataclass
class Tally:
    """Counts of qualification rows: all, qualified, and per disqualification reason."""

    rows: int = 0
    qualified: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_counts(cls, counts: Mapping[str, Any]) -> Tally:
        data = dict(counts)
        reasons = {str(r): int(data.pop(r.lower()) or 0) for r in REASON_ORDER}
        rows, qualified = int(data.pop("rows") or 0), int(data.pop("qualified") or 0)
        return cls(rows, qualified, reasons, {k: int(v or 0) for k, v in data.items()})

    @property
    def disqualified(self) -> int:
        return self.rows - self.qualified

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "qualified": self.qualified,
            "disqualified": self.disqualified,
            **{k.lower(): v for k, v in self.reasons.items()},
            **self.extra,
        }


def prepare_transaction(
    session: Session,
    month: Month,
    correlation_id: uuid.UUID,
    *,
    user_id: str | None,
    work_mem: str | None,
) -> None:
    """Serialise runs of one month and tag the transaction for the audit trigger.

    The advisory lock makes a second concurrent run wait and then find every row already
    there (ON CONFLICT DO NOTHING), so two runs started at once write one set of rows.
    """
    decisions.lock_month(session, month)
    set_audit_context(session, correlation_id, user_id)
    if work_mem:
        # One big hash aggregate over the month: enough memory keeps it off disk.
        decisions.set_work_mem(session, work_mem)


def insert_month(session: Session, month: Month, correlation_id: uuid.UUID) -> Tally:
    """Decide and write every evaluated customer that has no row for the month yet."""
    return Tally.from_counts(decisions.insert_month(session, month, correlation_id))


def recompute_month(session: Session, month: Month, correlation_id: uuid.UUID) -> Tally:
    """Re-decide existing rows that no notification refers to; returns the changed ones."""
    return Tally.from_counts(decisions.recompute_month(session, month, correlation_id))


def month_totals(session: Session, month: Month) -> Tally:
    """Counts over all of the month's qualification rows (whichever run wrote them)."""
    return Tally.from_counts(decisions.month_totals(session, month))
