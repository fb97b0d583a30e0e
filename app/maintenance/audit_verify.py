"""``audit verify``: recompute every row hash and every seal of the audit chain.

The chain (migration 0010, docs/security.md "Audit trail"): each audit row carries
``row_hash`` and the ``statement_id`` of the statement that wrote it; each statement's
digest is sha256 over its rows' hashes in id order; the seals of one day are a chain,
``seal = sha256(prev_seal || seq as 8 big-endian bytes || digest)``, the first one's
``prev_seal`` being sha256("premium-notify audit chain YYYY-MM-DD"). The seals are
recomputed here in Python (hashlib), independently of the database's functions.

A break is named precisely: a row whose content changed, a sealed statement whose rows
are missing or changed, a row no seal covers, a gap or a wrong link in a day's seals, or
a day whose last seal differs from the head exported with a backup.

Days retired to cold storage (their audit_log month dropped by retention, recorded in
``pn_retired_partitions``) keep their seals in the database: their links are checked as
any other; their rows are checked against the cold files when ``cold`` is given
(``audit verify --cold``: app/maintenance/audit_cold.py), else counted as not read (as
are the days of a month whose set has expired and been deleted, after 10 years).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.orm import Session

from app.maintenance.repository import audit_chain as repository
from app.maintenance.repository.audit_chain import Head, Seal, Statement
from app.months import Month

# The statements of one retired month's cold set (None: the store has no such set).
ColdReader = Callable[[Month], dict[int, Statement] | None]


def genesis(day: date) -> bytes:
    """``prev_seal`` of a day's first seal."""
    return hashlib.sha256(f"premium-notify audit chain {day.isoformat()}".encode()).digest()


def seal_of(prev: bytes, seq: int, digest: bytes) -> bytes:
    return hashlib.sha256(prev + seq.to_bytes(8, "big", signed=True) + digest).digest()


@dataclass(frozen=True)
class Break:
    day: date
    order: tuple[int, str]  # where in the day: the seal's seq (rows: their statement's)
    message: str

    def __str__(self) -> str:
        return f"{self.day.isoformat()}: {self.message}"


@dataclass
class Report:
    first: date | None
    last: date | None
    seals: int = 0
    rows: int = 0
    redacted: int = 0
    legacy: int = 0
    cold_seals: int = 0  # seals of retired days checked against their cold files
    unread_seals: int = 0  # seals of retired days whose rows were not read (no --cold)
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return min(self.breaks, key=lambda b: (b.day, b.order)) if self.breaks else None


def verify(
    session: Session,
    first: date | None = None,
    last: date | None = None,
    expected_heads: dict[date, tuple[int, bytes]] | None = None,
    cold: ColdReader | None = None,
) -> Report:
    """Check the days ``first`` .. ``last`` (default: the whole trail); ``cold`` reads a
    retired month's statements from cold storage."""
    lo, hi = repository.bounds(session)
    # Without a range given, the days of the exported heads are checked too: a trail
    # cut back to before them (even to nothing) must not verify against them.
    days = [d for d in (lo, hi, *(expected_heads or {})) if d is not None]
    first = first or min(days, default=None)
    last = last or max(days, default=None)
    report = Report(first, last)
    if first is None or last is None:
        return report
    statements = repository.statements(session, first, last)
    seq_of: dict[int, tuple[date, int]] = {}
    sealed: dict[tuple[date, int], bytes] = {}
    retired = _Retired(repository.retired_months(session, first, last), cold)
    previous: Seal | None = None
    for seal in repository.seals(session, first, last):
        report.seals += 1
        if previous is None or previous.day != seal.day:
            previous = None
        _check_link(report, seal, previous)
        statement = statements.pop(seal.statement_id, None)
        if statement is None and retired.holds(seal.day):
            if retired.readable(seal.day):
                report.cold_seals += 1
                _check_rows(report, seal, retired.statement(seal))
            else:  # no --cold, or the month's set has expired (10 years)
                report.unread_seals += 1
        else:
            _check_rows(report, seal, statement)
        seq_of[seal.statement_id] = (seal.day, seal.seq)
        sealed[(seal.day, seal.seq)] = seal.seal
        previous = seal
    report.rows += sum(s.rows for s in statements.values())
    for statement in statements.values():  # rows no seal covers
        report.breaks.append(
            Break(
                statement.day,
                (2**62, str(statement.statement_id)),
                f"{statement.rows} row(s) of statement {statement.statement_id} "
                "are not covered by any seal",
            )
        )
    for statement in retired.left_over(first, last):  # cold rows no seal covers
        report.breaks.append(
            Break(
                statement.day,
                (2**62, str(statement.statement_id)),
                f"{statement.rows} cold row(s) of statement {statement.statement_id} "
                "are not covered by any seal",
            )
        )
    _check_changed(session, report, first, last, seq_of)
    _check_unsealed(session, report, first, last)
    _check_heads(report, sealed, expected_heads or {})
    return report


class _Retired:
    """The retired audit months of the range and, read once each, their cold statements."""

    def __init__(self, months: list[date], cold: ColdReader | None) -> None:
        self.months = {Month.of(m) for m in months}
        self.cold = cold
        self.read: dict[Month, dict[int, Statement]] = {}
        self.absent: set[Month] = set()  # no set any more (expired)

    def holds(self, day: date) -> bool:
        return Month.of(day) in self.months

    def readable(self, day: date) -> bool:
        """Whether the day's cold set can be read (reads it the first time)."""
        month = Month.of(day)
        if self.cold is None or month in self.absent:
            return False
        if month not in self.read:
            found = self.cold(month)
            if found is None:
                self.absent.add(month)
                return False
            self.read[month] = dict(found)
        return True

    def statement(self, seal: Seal) -> Statement | None:
        return self.read.get(Month.of(seal.day), {}).pop(seal.statement_id, None)

    def left_over(self, first: date, last: date) -> list[Statement]:
        return [
            s for statements in self.read.values() for s in statements.values()
            if first <= s.day <= last
        ]  # fmt: skip


def _check_link(report: Report, seal: Seal, previous: Seal | None) -> None:
    expected_seq = 1 if previous is None else previous.seq + 1
    expected_prev = genesis(seal.day) if previous is None else previous.seal
    where = (seal.seq, "")
    if seal.seq != expected_seq:
        report.breaks.append(
            Break(
                seal.day, where, f"seal {seal.seq} follows seal {expected_seq - 1}: seals missing"
            )
        )
    elif seal.prev_seal != expected_prev:
        report.breaks.append(
            Break(seal.day, where, f"seal {seal.seq} does not link to the seal before it")
        )
    if seal_of(seal.prev_seal, seal.seq, seal.digest) != seal.seal:
        report.breaks.append(Break(seal.day, where, f"seal {seal.seq} does not match its content"))


def _check_rows(report: Report, seal: Seal, statement: Statement | None) -> None:
    where = (seal.seq, "")
    label = f"seal {seal.seq} (statement {seal.statement_id})"
    if statement is None:
        report.breaks.append(
            Break(seal.day, where, f"{label}: all {seal.row_count} of its rows are missing")
        )
        return
    report.rows += statement.rows
    if statement.rows != seal.row_count:
        report.breaks.append(
            Break(
                seal.day,
                where,
                f"{label}: {seal.row_count} row(s) sealed, {statement.rows} found "
                "(rows deleted or added)",
            )
        )
    elif statement.digest != seal.digest:
        report.breaks.append(
            Break(seal.day, where, f"{label}: its rows' hashes do not match the seal")
        )


def _check_changed(
    session: Session,
    report: Report,
    first: date,
    last: date,
    seq_of: dict[int, tuple[date, int]],
) -> None:
    changed = repository.changed_rows(session, first, last)
    report.redacted = repository.redacted_count(session, first, last) - len(changed)
    for row in changed:
        day, seq = seq_of.get(row.statement_id or -1, (row.timestamp.date(), 2**62))
        report.breaks.append(
            Break(
                day,
                (seq, row.id),
                f"row {row.id} in {row.table} (seal {seq if seq < 2**62 else '-'}, statement "
                f"{row.statement_id}): its content does not match its hash",
            )
        )


def _check_unsealed(session: Session, report: Report, first: date, last: date) -> None:
    report.legacy = repository.legacy_count(session, first, last)
    since = repository.chain_start(session)
    if since is None:
        return
    for row in repository.unsealed_rows(session, first, last, since):
        report.legacy -= 1
        report.breaks.append(
            Break(
                row.timestamp.date(),
                (2**62, row.id),
                f"row {row.id} in {row.table} has no seal but was written after the chain began",
            )
        )


def _check_heads(
    report: Report, sealed: dict[tuple[date, int], bytes], expected: dict[date, tuple[int, bytes]]
) -> None:
    """A history rewritten after a backup cannot match the head exported with it."""
    for day, (seq, seal) in sorted(expected.items()):
        if report.first is None or report.last is None or not report.first <= day <= report.last:
            continue
        found = sealed.get((day, seq))
        if found is None:
            report.breaks.append(
                Break(day, (seq, ""), f"exported head seal {seq} is missing from the chain")
            )
        elif found != seal:
            report.breaks.append(
                Break(day, (seq, ""), f"seal {seq} differs from the exported head")
            )


def chain_heads(session: Session, first: date, last: date) -> dict[str, Any]:
    """The last seal of each day, as exported beside a backup (JSON-ready)."""
    return {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "heads": [_head_json(h) for h in repository.heads(session, first, last)],
    }


def _head_json(head: Head) -> dict[str, Any]:
    return {
        "day": head.day.isoformat(),
        "seq": head.seq,
        "seal": head.seal.hex(),
        "sealed_at": head.sealed_at.isoformat(),
    }


def parse_heads(document: dict[str, Any]) -> dict[date, tuple[int, bytes]]:
    """The heads of an exported document (``chain_heads``, or a backup's ``.json``
    sidecar), for ``verify``'s ``expected_heads``."""
    listed = document.get("heads", document.get("audit_chain_heads", []))
    return {date.fromisoformat(h["day"]): (int(h["seq"]), bytes.fromhex(h["seal"])) for h in listed}
