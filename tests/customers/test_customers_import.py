"""Customer import: E.164, mobile verdicts, rejects with line numbers, idempotent upserts."""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.common import UserError
from app.cli.main import cli
from app.customers.importer import import_customers
from app.db.session import session_scope
from tests.support.db import count

HEADER = "account_number,first_name,last_name,email,phone_number,account_type,is_active"


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


ROWS = [
    "1001,דנה,לוי,dana@example.com,050-7123456,PREMIUM,true",  # line 2: national mobile
    "1002,Avi,Cohen,,+972 3-123-4567,PREMIUM,1",  # line 3: landline: kept, NOT_MOBILE
    "1003,Noa,Peretz,not-an-email,0507123457,PREMIUM,true",  # line 4: bad email
    "1004,Yossi,Mizrahi,yossi@example.com,12ab,PREMIUM,true",  # line 5: bad phone
    "1005,Rina,Biton,rina@example.com,,STANDARD,false",  # line 6: no phone, inactive
    ",Empty,Account,e@example.com,0507123458,PREMIUM,true",  # line 7: no account
    "1001,Dup,Licate,d@example.com,0507123459,PREMIUM,true",  # line 8: duplicate
    "1006,Too,Few,x@example.com",  # line 9: wrong field count
    "1007,Maybe,Active,m@example.com,0507123450,PREMIUM,sometimes",  # line 10
]


def test_import_validates_normalises_and_reports(session: Session, tmp_path: Path) -> None:
    report = import_customers(session_scope, write(tmp_path / "c.csv", ROWS))
    assert (report.rows, report.inserted, report.updated, report.unchanged) == (9, 5, 0, 0)
    reasons = {r.line: r.reason for r in report.rejected}
    assert sorted(reasons) == [7, 9, 10]
    assert reasons[7] == "account_number is empty"
    assert "expected 7 fields" in reasons[9]
    assert reasons[10] == "is_active is not true/false"
    assert [(s.line, s.reason) for s in report.skipped] == [
        (8, "duplicate of line 2 (the first copy is imported)")
    ]
    # Contact fields never cost a customer: imported, with a warning on their line.
    warned = {(w.line, w.field): w.reason for w in report.warnings}
    assert warned == {
        (3, "phone_number"): "phone_number: not a mobile number",
        (4, "email"): "email is not a valid address (kept in email_raw)",
        (5, "phone_number"): "phone_number: unparseable phone number (kept in phone_raw)",
        (6, "phone_number"): "phone_number: no phone number",
    }
    assert report.rows == report.accepted + len(report.rejected) + len(report.skipped)
    notes = report.rejected + report.skipped + report.warnings
    assert all("0507123" not in n.reason and "12ab" not in n.reason for n in notes)
    rows = {
        r.account_number: r
        for r in session.execute(
            text("SELECT account_number, first_name, phone_number, phone_status, phone_raw, "
                 "email, email_raw, phone_is_valid_mobile, is_active, last_verified, "
                 "updated_at FROM customers")
        )
    }  # fmt: skip
    assert rows["1001"].first_name == "דנה"
    assert rows["1001"].phone_number == "+972507123456"
    assert (rows["1001"].phone_status, rows["1001"].phone_is_valid_mobile) == ("MOBILE", True)
    assert (rows["1002"].phone_status, rows["1002"].phone_is_valid_mobile) == ("NOT_MOBILE", False)
    assert (rows["1003"].email, rows["1003"].email_raw) == (None, "not-an-email")
    assert (rows["1004"].phone_number, rows["1004"].phone_raw) == (None, "12ab")
    assert (rows["1004"].phone_status, rows["1004"].phone_is_valid_mobile) == ("INVALID", False)
    assert rows["1005"].phone_status == "MISSING" and rows["1005"].is_active is False
    assert rows["1001"].last_verified == rows["1001"].updated_at


def test_reimport_is_idempotent_and_changes_update(session: Session, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", ROWS[:2])
    import_customers(session_scope, path)
    stamp = session.execute(
        text("SELECT updated_at FROM customers WHERE account_number = '1002'")
    ).scalar_one()
    again = import_customers(session_scope, path)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)
    changed = write(tmp_path / "c2.csv", [ROWS[0], "1002,Avi,Cohen,,054-7654321,PREMIUM,1"])
    third = import_customers(session_scope, changed)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    session.expire_all()
    row = session.execute(
        text("SELECT phone_number, phone_status, updated_at FROM customers "
             "WHERE account_number = '1002'")
    ).one()  # fmt: skip
    assert row.phone_number == "+972547654321" and row.phone_status == "MOBILE"
    assert row.updated_at > stamp
    assert count(session, "SELECT count(*) FROM customers") == 2


def test_erased_customers_are_not_refilled(session: Session, tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", ROWS[:1])
    import_customers(session_scope, path)
    session.execute(
        text("UPDATE customers SET first_name = 'ERASED', email = NULL, phone_number = NULL, "
             "anonymised_at = LOCALTIMESTAMP")
    )  # fmt: skip
    session.commit()
    report = import_customers(session_scope, path)
    assert report.erased_skipped == 1 and report.updated == 0
    assert session.execute(text("SELECT first_name FROM customers")).scalar_one() == "ERASED"


def test_cli_import_writes_rejects_and_summary(session: Session, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        cli,
        ["customers", "import", str(write(tmp_path / "c.csv", ROWS)),
         "--rejects", str(rejects), "--format", "json"],
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # done, with rejected and skipped rows
    assert '"inserted": 5' in result.output and '"rejected": 3' in result.output
    assert '"skipped": 1' in result.output and '"warnings": 4' in result.output
    with rejects.open(encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    assert [(int(r["line"]), r["outcome"]) for r in lines] == [
        (7, "rejected"), (8, "skipped"), (9, "rejected"), (10, "rejected")
    ]


def test_cli_refuses_a_file_without_the_header(session: Session, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("account_number,first_name\n1,a\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["customers", "import", str(bad)])
    # main() turns a UserError into a clean message and exit status 2.
    assert isinstance(result.exception, UserError)
    assert "the header lacks last_name, email" in str(result.exception)
    assert count(session, "SELECT count(*) FROM customers") == 0
