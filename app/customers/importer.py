"""Bulk customer import: validate every row, COPY the valid ones, upsert by account number.

Each batch of valid rows is COPYed into a temp table and merged with one
``INSERT ... ON CONFLICT (account_number) DO UPDATE ... WHERE <something changed>``, so
a re-import of the same file changes nothing (no update, no new ``updated_at``).
``updated_at`` and ``last_verified`` (when the phone verdict was computed: now, in bulk)
are set on every inserted or changed row. Customers erased under GDPR
(``anonymised_at`` set) are never re-filled from a file. Invalid rows are reported with
their line number and reason and never stop the valid ones.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, cast

import psycopg2.extensions
from sqlalchemy.orm import Session

from app.customers.validation import COLUMNS, CustomerRow, RowError, parse_row
from app.db.session import session_scope
from app.models.enums import Severity
from app.observability.events import record_event

STAGE_COLUMNS = (
    "account_number, first_name, last_name, email, phone_number, account_type, is_active, "
    "phone_status, phone_is_valid_mobile"
)

MERGE = f"""
WITH merged AS (
    INSERT INTO customers AS c ({STAGE_COLUMNS}, updated_at, last_verified)
    SELECT {STAGE_COLUMNS}, LOCALTIMESTAMP, LOCALTIMESTAMP FROM customer_stage
    ON CONFLICT (account_number) DO UPDATE SET
        first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
        email = EXCLUDED.email, phone_number = EXCLUDED.phone_number,
        account_type = EXCLUDED.account_type, is_active = EXCLUDED.is_active,
        phone_status = EXCLUDED.phone_status,
        phone_is_valid_mobile = EXCLUDED.phone_is_valid_mobile,
        updated_at = LOCALTIMESTAMP, last_verified = LOCALTIMESTAMP
    WHERE c.anonymised_at IS NULL
      AND (c.first_name, c.last_name, c.email, c.phone_number, c.account_type, c.is_active)
          IS DISTINCT FROM
          (EXCLUDED.first_name, EXCLUDED.last_name, EXCLUDED.email, EXCLUDED.phone_number,
           EXCLUDED.account_type, EXCLUDED.is_active)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged
"""


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


def _copy_text(value: str | None) -> str:
    if value is None:
        return "\\N"
    return value.replace("\\", "\\\\")


def _merge(session: Session, batch: list[CustomerRow], report: ImportReport) -> None:
    buffer = io.StringIO()
    for r in batch:
        fields = (
            r.account_number,
            r.first_name,
            r.last_name,
            r.email,
            r.phone_number,
            r.account_type,
            "t" if r.is_active else "f",
            str(r.phone_status),
            "t" if r.phone_is_valid_mobile else "f",
        )
        buffer.write("\t".join(_copy_text(f) for f in fields) + "\n")
    buffer.seek(0)
    dbapi = cast(psycopg2.extensions.connection, session.connection().connection.dbapi_connection)
    with dbapi.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS customer_stage ("
            "account_number varchar(50), first_name varchar(100), last_name varchar(100), "
            "email varchar(255), phone_number varchar(20), account_type varchar(50), "
            "is_active boolean, phone_status varchar(20), phone_is_valid_mobile boolean"
            ") ON COMMIT DELETE ROWS"
        )
        cur.copy_expert(f"COPY customer_stage ({STAGE_COLUMNS}) FROM STDIN", buffer)
        cur.execute(
            "SELECT count(*) FROM customer_stage s JOIN customers c "
            "ON c.account_number = s.account_number WHERE c.anonymised_at IS NOT NULL"
        )
        erased = cur.fetchone()
        cur.execute(MERGE)
        counts = cur.fetchone()
        cur.execute("TRUNCATE customer_stage")
    assert counts is not None and erased is not None
    report.inserted += int(counts[0])
    report.updated += int(counts[1])
    report.erased_skipped += int(erased[0])
    report.unchanged += len(batch) - int(counts[0]) - int(counts[1]) - int(erased[0])


def import_customers(
    path: str | Path,
    *,
    region: str = "IL",
    batch_size: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import ``path``; each batch is one transaction (a re-import is harmless)."""
    report = ImportReport()
    p = Path(path)
    with _open(p) as handle:
        batch: list[CustomerRow] = []
        done = 0
        for row in _rows(handle, report, region):
            batch.append(row)
            if len(batch) >= batch_size:
                with session_scope() as session:
                    _merge(session, batch, report)
                batch = []
            if progress is not None and report.rows - done >= 1000:
                progress(report.rows - done)
                done = report.rows
        if batch:
            with session_scope() as session:
                _merge(session, batch, report)
        if progress is not None:
            progress(report.rows - done)
    with session_scope() as session:
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
