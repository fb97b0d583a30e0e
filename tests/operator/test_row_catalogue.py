"""A catalogue of bad rows for each import: every row accounted for, valid rows go through.

Each import reads one file holding every kind of bad row beside valid ones. Every
catalogue entry must come out on its own line with the documented outcome (accepted,
with or without a warning; rejected; skipped) and reason; ``rows = accepted + rejected
+ skipped`` in the table, in the summary line on stderr and in the run's ``job_runs``
row; the exit status is 3 (done, with rows rejected or skipped).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from app.cli.main import cli
from tests.support.factories import create_customer

HEADER = "account_number,first_name,last_name,email,phone_number,account_type,is_active"


@dataclass(frozen=True)
class Entry:
    label: str
    line: str  # the CSV line as written (bytes for undecodable ones come from ``raw``)
    outcome: str  # accepted, warning, rejected, skipped
    reason: str = ""  # a part of the reason
    account: str = ""
    raw: bytes | None = None


CUSTOMER_ROWS = [
    Entry("valid mobile", "C01,Dana,Levi,dana@example.com,+972507123467,premium,true",
          "accepted", account="C01"),
    Entry("valid national mobile", "C02,דנה,כהן,,050-7123468,premium,1", "accepted",
          account="C02"),
    Entry("landline", "C03,Avi,Cohen,,03-1234567,premium,true", "warning",
          "not a mobile number", "C03"),
    Entry("foreign landline", "C04,John,Smith,,+44 20 7946 0958,premium,true", "warning",
          "not a mobile number", "C04"),
    Entry("malformed +9725", "C05,Noa,Peretz,,+9725,premium,true", "warning",
          "kept in phone_raw", "C05"),
    Entry("malformed 12345", "C06,Rina,Biton,,12345,premium,true", "warning",
          "kept in phone_raw", "C06"),
    Entry("not a number", "C07,Eli,Mor,,not-a-number,premium,true", "warning",
          "kept in phone_raw", "C07"),
    Entry("no phone", "C08,Tal,Bar,tal@example.com,,premium,true", "warning",
          "no phone number", "C08"),
    Entry("invalid email", "C09,Gil,Ron,not-an-email,+972507123469,premium,true", "warning",
          "kept in email_raw", "C09"),
    Entry("no account", ",Nir,Oz,,+972507123470,premium,true", "rejected",
          "account_number is empty"),
    Entry("no first name", "C11,,Oz,,+972507123471,premium,true", "rejected",
          "first_name is empty", "C11"),
    Entry("no last name", "C12,Nir,,,+972507123472,premium,true", "rejected",
          "last_name is empty", "C12"),
    Entry("account too long", "X" * 51 + ",Nir,Oz,,,premium,true", "rejected",
          "account_number is longer than 50"),
    Entry("name too long", "C14," + "n" * 101 + ",Oz,,,premium,true", "rejected",
          "first_name is longer than 100", "C14"),
    Entry("email too long", "C15,Nir,Oz," + "e" * 250 + "@x.com,,premium,true", "rejected",
          "email is longer than 255", "C15"),
    Entry("phone too long", "C16,Nir,Oz,," + "5" * 51 + ",premium,true", "rejected",
          "phone_number is longer than 50", "C16"),
    Entry("control character", 'C17,"Ni\x00r",Oz,,,premium,true', "rejected",
          "control characters", "C17"),
    Entry("too few fields", "C18,Nir,Oz", "rejected", "expected 7 fields, got 3", "C18"),
    Entry("too many fields", "C19,Nir,Oz,,,premium,true,extra", "rejected",
          "expected 7 fields, got 8", "C19"),
    Entry("not UTF-8", "", "rejected", "not UTF-8", "C20",
          raw=b"C20,N\xffir,Oz,,,premium,true"),
    Entry("unreadable is_active", "C21,Nir,Oz,,,premium,sometimes", "rejected",
          "is_active is not true/false", "C21"),
    Entry("field over the CSV limit", 'C22,"' + "a" * 140_000 + '",Oz,,,premium,true',
          "rejected", "malformed CSV"),
    Entry("second copy of C01", "C01,Other,Name,,+972507123499,premium,true", "skipped",
          "duplicate of line 2 (the first copy is imported)", "C01"),
    Entry("erased customer", "ERASED1,Back,Again,,+972507123498,premium,true", "skipped",
          "erased under GDPR", "ERASED1"),
    Entry("inactive customer", "C25,Ina,Ctive,,+972507123497,premium,false", "accepted",
          account="C25"),
]  # fmt: skip


def _write(path: Path, header: str, entries: list[Entry]) -> Path:
    body = header.encode() + b"\n"
    for entry in entries:
        body += (entry.raw if entry.raw is not None else entry.line.encode("utf-8")) + b"\n"
    path.write_bytes(body)
    return path


def _notes(result: Result, rejects: Path, warnings: Path | None) -> dict[int, tuple[str, str]]:
    """Line -> (outcome, reason), from the --rejects and --warnings files."""
    notes: dict[int, tuple[str, str]] = {}
    with rejects.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            notes[int(row["line"])] = (row["outcome"], row["reason"])
    if warnings is not None:
        with warnings.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                notes[int(row["line"])] = ("warning", row["reason"])
    return notes


def _summary(result: Result) -> dict[str, Any]:
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows[0]


def _check_counts(session: Session, result: Result, summary: dict[str, Any], job: str) -> None:
    assert result.exit_code == 3, result.output  # done, with rows rejected or skipped
    assert summary["rows"] == summary["accepted"] + summary["rejected"] + summary["skipped"]
    line = [s for s in result.stderr.splitlines() if "rows = " in s]
    assert line == [
        f"{line[0].split(':')[0]}: {summary['rows']} rows = {summary['accepted']} accepted + "
        f"{summary['rejected']} rejected + {summary['skipped']} skipped" + line[0].split(
            " skipped", 1)[1]
    ]  # fmt: skip
    stats = session.execute(
        text("SELECT stats FROM job_runs WHERE job = :job"), {"job": job}
    ).scalar_one()
    recorded = stats.get("import", stats)  # the balance run keeps the file's under "import"
    for key in ("rows", "accepted", "rejected", "skipped"):
        assert recorded[key] == summary[key], key


@pytest.fixture
def customers_imported(session: Session, tmp_path: Path) -> tuple[Result, dict[int, Any]]:
    erased = create_customer(session, account_number="ERASED1", first_name="ERASED")
    erased.anonymised_at = erased.created_at
    session.commit()
    path = _write(tmp_path / "customers.csv", HEADER, CUSTOMER_ROWS)
    rejects, warnings = tmp_path / "rejects.csv", tmp_path / "warnings.csv"
    result = CliRunner().invoke(
        cli, ["customers", "import", str(path), "--rejects", str(rejects),
              "--warnings", str(warnings), "--format", "json"],
    )  # fmt: skip
    return result, _notes(result, rejects, warnings)


@pytest.mark.parametrize("index", range(len(CUSTOMER_ROWS)), ids=[e.label for e in CUSTOMER_ROWS])
def test_customer_row(
    session: Session, customers_imported: tuple[Result, dict[int, Any]], index: int
) -> None:
    result, notes = customers_imported
    entry, line = CUSTOMER_ROWS[index], index + 2
    if entry.outcome == "accepted":
        assert line not in notes, notes.get(line)
    else:
        outcome, reason = notes[line]
        assert outcome == entry.outcome and entry.reason in reason, (outcome, reason)
    stored = session.execute(
        text("SELECT first_name FROM customers WHERE account_number = :a"), {"a": entry.account}
    ).scalar()
    if entry.outcome in ("accepted", "warning"):
        assert stored is not None  # imported, whatever its contact fields say
    elif entry.outcome == "rejected" and entry.account:
        assert stored is None
    elif entry.label == "second copy of C01":
        assert stored == "Dana"  # the first copy wins
    elif entry.label == "erased customer":
        assert stored == "ERASED"  # never re-filled


def test_customer_file_is_accounted_for(
    session: Session, customers_imported: tuple[Result, dict[int, Any]]
) -> None:
    result, notes = customers_imported
    summary = _summary(result)
    expected = {o: sum(1 for e in CUSTOMER_ROWS if e.outcome == o) for o in
                ("accepted", "warning", "rejected", "skipped")}  # fmt: skip
    assert summary["rows"] == len(CUSTOMER_ROWS)
    assert summary["accepted"] == expected["accepted"] + expected["warning"]
    assert (summary["rejected"], summary["skipped"]) == (expected["rejected"], expected["skipped"])
    assert summary["warnings"] == expected["warning"]
    _check_counts(session, result, summary, "customer_import")
    # Reasons name the problem, never the value (personal data).
    assert not any("not-a-number" in r or "+9725," in r for _, r in notes.values())


# --- the EOD extract ----------------------------------------------------------------------

DAY = date.today() - timedelta(days=5)
D = DAY.isoformat()
EOD_HEADER = "account_number,balance,as_of_date,currency"
EOD_ROWS = [
    Entry("valid", f"E01,20000.00,{D},ILS", "accepted", account="E01"),
    Entry("negative balance", f"E02,-12.50,{D},ILS", "accepted", account="E02"),
    Entry("a day stale", f"E03,16000.00,{(DAY - timedelta(days=1)).isoformat()},ILS",
          "accepted", account="E03"),
    Entry("empty currency is ILS", f"E04,100.00,{D},", "accepted", account="E04"),
    Entry("not a number", f"E05,lots,{D},ILS", "rejected", "not a number", "E05"),
    Entry("three decimals", f"E06,1.234,{D},ILS", "rejected", "more than two decimals", "E06"),
    Entry("exponent notation", f"E07,1e5,{D},ILS", "rejected", "exponent notation", "E07"),
    Entry("empty balance", f"E08,,{D},ILS", "rejected", "balance is empty", "E08"),
    Entry("date not ISO", "E09,100.00,14/10/2026,ILS", "rejected", "YYYY-MM-DD", "E09"),
    Entry("currency", f"E10,100.00,{D},USD", "rejected", "not ILS", "E10"),
    Entry("too few fields", "E11,100.00", "rejected", "expected 4 fields", "E11"),
    Entry("no account", f",100.00,{D},ILS", "rejected", "account_number empty"),
    Entry("not UTF-8", "", "rejected", "not UTF-8", "E13", raw=b"E13,1\xff0,2026-01-01,ILS"),
    Entry("unknown account", f"STRANGER,100.00,{D},ILS", "rejected", "unknown account",
          "STRANGER"),
    Entry("conflicting copy 1", f"E15,100.00,{D},ILS", "rejected",
          "conflicting duplicate on line 20", "E15"),
    Entry("inactive account", f"E16,20000.00,{D},ILS", "skipped", "inactive account", "E16"),
    Entry("balance as of a later day", f"E17,20000.00,{(DAY + timedelta(days=1)).isoformat()},ILS",
          "skipped", "balance as of", "E17"),
    Entry("balance too old", f"E18,20000.00,{(DAY - timedelta(days=9)).isoformat()},ILS",
          "skipped", "balance as of", "E18"),
    Entry("conflicting copy 2", f"E15,200.00,{D},ILS", "rejected",
          "conflicting duplicate of line 16", "E15"),
    Entry("identical copy", f"E01,20000.00,{D},ILS", "skipped",
          "duplicate of line 2 (same values; the first copy is used)", "E01"),
]  # fmt: skip


@pytest.fixture
def extract_imported(session: Session, tmp_path: Path) -> tuple[Result, dict[int, Any]]:
    for entry in EOD_ROWS:
        if entry.account and entry.account != "STRANGER":
            exists = session.execute(
                text("SELECT 1 FROM customers WHERE account_number = :a"), {"a": entry.account}
            ).scalar()
            if not exists:
                create_customer(session, account_number=entry.account,
                                is_active=entry.label != "inactive account")  # fmt: skip
    session.commit()
    path = _write(tmp_path / "eod.csv", EOD_HEADER, EOD_ROWS)
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        cli, ["balances", "import", str(path), "--date", D, "--rejects", str(rejects),
              "--shards", "2", "--format", "json"],
    )  # fmt: skip
    return result, _notes(result, rejects, None)


@pytest.mark.parametrize("index", range(len(EOD_ROWS)), ids=[e.label for e in EOD_ROWS])
def test_extract_line(
    session: Session, extract_imported: tuple[Result, dict[int, Any]], index: int
) -> None:
    result, notes = extract_imported
    entry, line = EOD_ROWS[index], index + 2
    checked = session.execute(
        text("SELECT d.balance FROM daily_balance_checks d JOIN customers c "
             "ON c.id = d.customer_id WHERE c.account_number = :a AND d.check_date = :d"),
        {"a": entry.account, "d": DAY},
    ).scalar()  # fmt: skip
    if entry.outcome == "accepted":
        assert line not in notes, notes.get(line)
        assert checked is not None  # the valid lines of the same file go through
    else:
        outcome, reason = notes[line]
        assert outcome == entry.outcome and entry.reason in reason, (outcome, reason)
        if entry.account not in ("E01", ""):
            assert checked is None  # never a guessed balance


def test_extract_is_accounted_for(
    session: Session, extract_imported: tuple[Result, dict[int, Any]]
) -> None:
    result, _ = extract_imported
    summary = _summary(result)
    expected = {o: sum(1 for e in EOD_ROWS if e.outcome == o) for o in
                ("accepted", "rejected", "skipped")}  # fmt: skip
    assert summary["rows"] == len(EOD_ROWS)
    assert {k: summary[k] for k in expected} == expected
    assert summary["stale"] == 1
    _check_counts(session, result, summary, "balance_checks")
