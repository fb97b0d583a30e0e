"""Bulk customer import: every row of the file is accounted for.

A row is **accepted** (inserted, updated or unchanged; perhaps with warnings about its
contact fields, ``app.customers.validation``), **rejected** (no identity, or the line
cannot be read) or **skipped** (a second copy of an account already in the file: the
first copy wins; a customer erased under GDPR: never re-filled). ``rows = accepted +
rejected + skipped``, always; every rejected or skipped row and every warning carries
its line, account number and reason (never a value).

Each batch of rows is one transaction (``repository.merge_batch``: a re-import of the
same file changes nothing), so the import takes a ``SessionScope``
(``app.db.session.session_scope`` in production). The import is a ``job_runs`` row
(job ``customer_import``) with the counts, holding a lease while it works
(``app.db.leases``), and one audit row: the counts and how many customers each field
changed for, never the values.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.orm import Session

from app import csvout
from app.customers import repository
from app.customers.validation import COLUMNS, CustomerRow, RowError, parse_row
from app.db import leases
from app.db.audit import set_audit_context
from app.db.session import SessionScope
from app.models.enums import Severity
from app.observability.events import record_event

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes surrogateescape could not decode
REJECTED, SKIPPED, WARNING = "rejected", "skipped", "warning"


class CustomerFileError(ValueError):
    """The file cannot be imported at all (unreadable, empty, wrong header)."""


@dataclass(frozen=True, slots=True)
class RowNote:
    """A rejected or skipped row, or a warning about an accepted one (no values)."""

    line: int
    account_number: str
    reason: str
    outcome: str = REJECTED
    field: str = ""  # warnings: the contact field concerned


Rejection = RowNote  # the name callers knew


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowNote] = field(default_factory=list)
    skipped: list[RowNote] = field(default_factory=list)
    warnings: list[RowNote] = field(default_factory=list)
    fields_changed: Counter[str] = field(default_factory=Counter)
    run_id: str | None = None

    @property
    def accepted(self) -> int:
        return self.inserted + self.updated + self.unchanged

    @property
    def erased_skipped(self) -> int:
        return sum(1 for s in self.skipped if s.reason == ERASED)

    def problems(self) -> list[RowNote]:
        """Rejected and skipped rows, in file order (the ``--rejects`` file)."""
        return sorted(self.rejected + self.skipped, key=lambda n: n.line)

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "rejected": len(self.rejected),
            "skipped": len(self.skipped),
            "warnings": len(self.warnings),
        }


ERASED = "customer erased under GDPR: not re-imported"
Batch = list[tuple[int, CustomerRow]]


def _open(path: Path) -> TextIO:
    # surrogateescape: bytes that are not UTF-8 become lone surrogates in their row,
    # which is rejected alone; a decode error would refuse the whole file (and, as the
    # decoder reads ahead, could even fail the header of a small file). OSError (no such
    # file, permission) reaches the CLI's error layer with the path.
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def count_rows(path: Path) -> int:
    """Data lines in the file (the progress bar's total)."""
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _header(reader: Any) -> dict[str, int]:
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CustomerFileError("the file is empty") from None
    except (csv.Error, UnicodeDecodeError):
        raise CustomerFileError("the header is unreadable (the file must be UTF-8 CSV)") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CustomerFileError(f"the header lacks {', '.join(missing)}")
    return {c: header.index(c) for c in COLUMNS} | {"": len(header)}


def _rows(handle: TextIO, report: ImportReport, region: str) -> Iterator[tuple[int, CustomerRow]]:
    reader = csv.reader(handle)
    index = _header(reader)
    width = index.pop("")
    seen: dict[str, int] = {}
    line = 1
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line += 1
            report.rows += 1
            report.rejected.append(RowNote(line, "", f"unreadable line (malformed CSV: {exc})"))
            continue
        line = reader.line_num
        if not raw or (len(raw) == 1 and not raw[0].strip()):
            continue
        report.rows += 1
        i_account = index["account_number"]
        account = raw[i_account].strip()[:50] if len(raw) > i_account else ""
        if any(_NOT_UTF8.search(cell) for cell in raw):
            account = _NOT_UTF8.sub("?", account)
            report.rejected.append(RowNote(line, account, "unreadable line (not UTF-8)"))
            continue
        if len(raw) != width:
            reason = f"unreadable line (expected {width} fields, got {len(raw)})"
            report.rejected.append(RowNote(line, account, reason))
            continue
        try:
            row = parse_row({c: raw[i] for c, i in index.items()}, region)
        except RowError as exc:
            report.rejected.append(RowNote(line, account, str(exc)))
            continue
        if row.account_number in seen:
            first = seen[row.account_number]
            reason = f"duplicate of line {first} (the first copy is imported)"
            report.skipped.append(RowNote(line, account, reason, SKIPPED))
            continue
        seen[row.account_number] = line
        report.warnings += [RowNote(line, account, r, WARNING, f) for f, r in row.warnings]
        yield line, row


def _merge(session: Session, batch: Batch, report: ImportReport) -> None:
    counts = repository.merge_batch(session, [row for _, row in batch])
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.fields_changed.update(counts.changed)
    erased = set(counts.erased)
    report.skipped += [
        RowNote(line, row.account_number, ERASED, SKIPPED)
        for line, row in batch
        if row.account_number in erased
    ]
    report.unchanged += len(batch) - counts.inserted - counts.updated - len(erased)


def import_customers(
    scope: SessionScope,
    path: str | Path,
    *,
    region: str = "IL",
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
    triggered_by: str = "cli",
) -> ImportReport:
    """Import ``path``; each batch is one transaction of ``scope`` (a re-import is harmless).

    The file is opened (and its header read) before anything is written: a file that
    cannot be imported at all raises ``CustomerFileError`` or ``OSError`` with no run row.
    """
    report = ImportReport()
    p = Path(path)
    with _open(p) as handle:
        rows = _rows(handle, report, region)
        first = next(rows, None)  # reads the header: a bad file fails here, before any write
        with scope() as session:
            run_id, correlation_id = repository.start_run(session, p.name, triggered_by)
            leases.take_over_stale(session, repository.JOB, run_id)
        report.run_id = str(run_id)
        with leases.Heartbeat(scope, run_id):
            try:
                _load(
                    chain([first] if first is not None else [], rows),
                    report,
                    batch_size,
                    progress,
                    lambda batch: _commit(scope, batch, report, correlation_id, triggered_by),
                )
            except BaseException as exc:
                with scope() as session:
                    repository.finish_run(session, run_id, stats(report), type(exc).__name__)
                raise
    _finish(scope, p, report, run_id, correlation_id, triggered_by)
    return report


def _load(
    rows: Iterator[tuple[int, CustomerRow]],
    report: ImportReport,
    batch_size: int,
    progress: Callable[[int], None] | None,
    commit: Callable[[Batch], None],
) -> None:
    batch: Batch = []
    done = 0
    for item in rows:
        batch.append(item)
        if len(batch) >= batch_size:
            commit(batch)
            batch = []
        if progress is not None and report.rows - done >= 1000:
            progress(report.rows - done)
            done = report.rows
    if batch:
        commit(batch)
    if progress is not None:
        progress(report.rows - done)


def _commit(
    scope: SessionScope,
    batch: Batch,
    report: ImportReport,
    correlation_id: Any,
    user: str,
) -> None:
    with scope() as session:
        # Row-level audit of customers (if any) names this import's run and operator.
        set_audit_context(session, correlation_id, user)
        _merge(session, batch, report)


def stats(report: ImportReport) -> dict[str, Any]:
    """The run's figures (``job_runs.stats`` and the audit row): counts only."""
    return {
        **report.as_dict(),
        "warnings_by_field": dict(Counter(w.field for w in report.warnings)),
        "fields_changed": dict(report.fields_changed),
    }


def _finish(
    scope: SessionScope,
    path: Path,
    report: ImportReport,
    run_id: Any,
    correlation_id: Any,
    user: str,
) -> None:
    figures = stats(report)
    with scope() as session:
        repository.finish_run(session, run_id, figures)
        repository.audit_import(
            session, run_id, correlation_id, user, {"file": path.name, **figures}
        )
        record_event(
            session,
            "customers.imported",
            f"customer import: {report.rows} rows, {report.accepted} accepted "
            f"({report.inserted} inserted, {report.updated} updated, {report.unchanged} "
            f"unchanged), {len(report.rejected)} rejected, {len(report.skipped)} skipped, "
            f"{len(report.warnings)} warnings",
            severity=Severity.WARNING if report.rejected or report.skipped else Severity.INFO,
            data={"file": path.name, "run_id": str(run_id), **report.as_dict()},
            correlation_id=correlation_id,
        )


def write_rows(path: str | Path, notes: list[RowNote], *, warnings: bool = False) -> None:
    """The ``--rejects`` file (line, account_number, outcome, reason) or, with
    ``warnings``, the ``--warnings`` file (line, account_number, field, reason)."""
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csvout.writer(handle)
        third = "field" if warnings else "outcome"
        writer.writerow(["line", "account_number", third, "reason"])
        for n in notes:
            writer.writerow(
                [n.line, n.account_number, n.field if warnings else n.outcome, n.reason]
            )


def write_rejects(path: str | Path, rejected: list[RowNote]) -> None:
    """Rejected and skipped rows (kept for callers of the earlier name)."""
    write_rows(path, rejected)
