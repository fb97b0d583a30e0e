"""Bulk customer import: validate every row, COPY the valid ones, upsert by account number.

Each batch of valid rows is one transaction (``repository.merge_batch``: a re-import of
the same file changes nothing; customers erased under GDPR are never re-filled), so the
import takes a ``SessionScope`` (``app.db.session.session_scope`` in production).
Invalid rows are reported with their line number and reason and never stop the valid
ones.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqlalchemy.orm import Session

from app.customers import repository
from app.customers.validation import COLUMNS, CustomerRow, RowError, parse_row
from app.db.session import SessionScope
from app.models.enums import Severity
from app.observability.events import record_event

_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes surrogateescape could not decode


class CustomerFileError(ValueError):
    """The file cannot be imported at all (missing, unreadable, wrong header)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    account_number: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    erased_skipped: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "erased_skipped": self.erased_skipped,
            "rejected": len(self.rejected),
        }


def _open(path: Path) -> TextIO:
    try:
        # surrogateescape: bytes that are not UTF-8 become lone surrogates in their row,
        # which is rejected alone; a decode error would refuse the whole file (and, as
        # the decoder reads ahead, could even fail the header of a small file).
        return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise CustomerFileError(f"{path}: {exc.strerror}") from None


def count_rows(path: Path) -> int:
    """Data lines in the file (the progress bar's total)."""
    with path.open("rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _rows(handle: TextIO, report: ImportReport, region: str) -> Iterator[CustomerRow]:
    reader = csv.reader(handle)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CustomerFileError("the file is empty") from None
    except (csv.Error, UnicodeDecodeError):
        raise CustomerFileError("the header is unreadable (the file must be UTF-8 CSV)") from None
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CustomerFileError(f"the header lacks {', '.join(missing)}")
    index = {c: header.index(c) for c in COLUMNS}
    seen: dict[str, int] = {}
    line = 1
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise CustomerFileError(f"line {line + 1}: the file is not UTF-8") from None
        except csv.Error as exc:
            line += 1
            report.rejected.append(Rejection(line, "", f"malformed CSV ({exc})"))
            continue
        line = reader.line_num
        if not raw or (len(raw) == 1 and not raw[0].strip()):
            continue
        report.rows += 1
        i_account = index["account_number"]
        account = raw[i_account].strip()[:50] if len(raw) > i_account else ""
        if any(_NOT_UTF8.search(cell) for cell in raw):
            account = _NOT_UTF8.sub("?", account)
            report.rejected.append(Rejection(line, account, "not UTF-8"))
            continue
        if len(raw) != len(header):
            report.rejected.append(
                Rejection(line, account, f"expected {len(header)} fields, got {len(raw)}")
            )
            continue
        try:
            row = parse_row({c: raw[i] for c, i in index.items()}, region)
        except RowError as exc:
            report.rejected.append(Rejection(line, account, str(exc)))
            continue
        if row.account_number in seen:
            reason = f"duplicate account_number (first on line {seen[row.account_number]})"
            report.rejected.append(Rejection(line, account, reason))
            continue
        seen[row.account_number] = line
        yield row


def _merge(session: Session, batch: list[CustomerRow], report: ImportReport) -> None:
    counts = repository.merge_batch(session, batch)
    report.inserted += counts.inserted
    report.updated += counts.updated
    report.erased_skipped += counts.erased
    report.unchanged += len(batch) - counts.inserted - counts.updated - counts.erased


def import_customers(
    scope: SessionScope,
    path: str | Path,
    *,
    region: str = "IL",
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``path``; each batch is one transaction of ``scope`` (a re-import is harmless)."""
    report = ImportReport()
    p = Path(path)
    with _open(p) as handle:
        batch: list[CustomerRow] = []
        done = 0
        for row in _rows(handle, report, region):
            batch.append(row)
            if len(batch) >= batch_size:
                with scope() as session:
                    _merge(session, batch, report)
                batch = []
            if progress is not None and report.rows - done >= 1000:
                progress(report.rows - done)
                done = report.rows
        if batch:
            with scope() as session:
                _merge(session, batch, report)
        if progress is not None:
            progress(report.rows - done)
    with scope() as session:
        record_event(
            session,
            "customers.imported",
            f"customer import: {report.inserted} inserted, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.rejected)} rejected",
            severity=Severity.WARNING if report.rejected else Severity.INFO,
            data={"file": p.name, **report.as_dict()},
        )
    return report


def write_rejects(path: str | Path, rejected: list[Rejection]) -> None:
    with Path(path).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "account_number", "reason"])
        for r in rejected:
            writer.writerow([r.line, r.account_number, r.reason])
