"""An EOD extract imported for one day: every line of the file accounted for.

Each data line is **accepted** (its balance is the customer's check of the day, or
already was), **rejected** (unreadable, a bad amount, date or currency, conflicting
copies of one account, an account no customer has) or **skipped** (an inactive
customer's account, a balance as of another day than the one asked for, a second
copy with the same values: the first copy is used). ``rows = accepted + rejected +
skipped``; every rejected or skipped line keeps its line number, account and reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.balances import repository
from app.balances.checks import evaluate
from app.balances.sources.base import Balance, Missing
from app.balances.sources.eod_file import Extract, Rejected

UNKNOWN = "unknown account (no such customer)"
INACTIVE = "inactive account (not checked)"
_NOBODY = uuid.UUID(int=0)


@dataclass(frozen=True, slots=True)
class Note:
    """A rejected or skipped line of the extract (no balance in it)."""

    line: int
    account_number: str
    reason: str
    outcome: str


@dataclass
class ExtractAccounting:
    rows: int = 0
    accepted: int = 0
    stale: int = 0  # accepted with a balance as of a few days earlier (weekends)
    notes: list[Note] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for n in self.notes if n.outcome == outcome)

    def problems(self) -> list[Note]:
        return sorted(self.notes, key=lambda n: n.line)

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.count("rejected"),
            "skipped": self.count("skipped"),
            "stale": self.stale,
        }


def account_for(
    session: Session, extract: Extract, day: date, max_stale_days: int
) -> ExtractAccounting:
    """What importing ``extract`` for ``day`` does to each of its lines (reads only)."""
    result = ExtractAccounting(rows=extract.rows)
    result.notes += [_note(r, "rejected") for r in extract.rejected]
    result.notes += [_note(r, "skipped") for r in extract.skipped]
    states = repository.account_states(session, list(extract.lines))
    for account, line in extract.lines.items():
        answer = extract.answers[account]
        assert isinstance(answer, Balance)
        active = states.get(account)
        if active is None:
            result.notes.append(Note(line, account, UNKNOWN, "rejected"))
        elif not active:
            result.notes.append(Note(line, account, INACTIVE, "skipped"))
        elif isinstance(evaluate(_NOBODY, answer, day, Decimal(0), max_stale_days), Missing):
            reason = (
                f"balance as of {answer.as_of.isoformat()}, not {day.isoformat()} "
                f"(at most {max_stale_days} days earlier is used)"
            )
            result.notes.append(Note(line, account, reason, "skipped"))
        else:
            result.accepted += 1
            result.stale += answer.as_of != day
    return result


def _note(r: Rejected, outcome: str) -> Note:
    return Note(r.line, r.account_number, r.reason, outcome)


def record(session: Session, run_id: uuid.UUID, file_name: str, counts: dict[str, Any]) -> None:
    """The file's accounting in the run's ``job_runs.stats`` (key ``import``)."""
    repository.merge_run_stats(session, run_id, {"import": {"file": file_name, **counts}})
