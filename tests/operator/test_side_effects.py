"""Validate before any side effect; say so when there is nothing to report; audit imports."""

from __future__ import annotations

import json
import stat
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.common import UserError
from app.cli.main import cli
from app.config import get_settings
from app.months import Month
from tests.support.db import count
from tests.support.factories import create_check, create_customer, create_qualification

HEADER = "account_number,first_name,last_name,email,phone_number,account_type,is_active"
LAST_MONTH = Month.of(date.today()).previous()


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("premium-notify ")


def test_notifications_without_credentials_write_nothing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = create_customer(session)
    create_qualification(session, customer, qualification_month=LAST_MONTH.first)
    session.commit()
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["run", "notifications", "--month", str(LAST_MONTH)])
    get_settings.cache_clear()
    assert isinstance(result.exception, UserError), result.output
    assert "TWILIO_ACCOUNT_SID" in str(result.exception)
    assert count(session, "SELECT count(*) FROM notifications") == 0  # the outbox stays empty
    assert count(session, "SELECT count(*) FROM job_runs") == 0


def test_gdpr_export_audits_only_an_export_that_exists(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = create_customer(session)
    session.commit()
    audits = "SELECT count(*) FROM audit_log WHERE operation = 'GDPR_EXPORT'"
    bad = CliRunner().invoke(
        cli, ["gdpr", "export", "--account", customer.account_number, "-o", "/no/such/dir/x.json"]
    )
    assert isinstance(bad.exception, UserError) and "/no/such/dir" in str(bad.exception)
    assert count(session, audits) == 0  # refused before anything was read or written
    target = tmp_path / "export.json"
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS_FILE", str(tmp_path / "keys" / "recipients.txt"))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY_FILE", str(tmp_path / "keys" / "identity.txt"))
    get_settings.cache_clear()
    good = CliRunner().invoke(
        cli, ["gdpr", "export", "--account", customer.account_number, "-o", str(target)]
    )
    get_settings.cache_clear()
    assert good.exit_code == 0, good.output
    from app.maintenance.encryption import decrypt

    clear = decrypt(target.read_bytes(), tmp_path / "keys" / "identity.txt")
    assert json.loads(clear)["account_number"] == customer.account_number
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert count(session, audits) == 1


def test_qualification_names_the_missing_source_before_writing(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = create_customer(session)
    create_check(session, customer, check_date=LAST_MONTH.first)  # the other days are gaps
    session.commit()
    monkeypatch.delenv("CORE_BANKING_URL", raising=False)
    monkeypatch.setenv("BALANCE_SOURCE", "http")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["run", "qualification", "--month", str(LAST_MONTH)])
    message = str(result.exception)
    assert isinstance(result.exception, UserError), result.output
    for name in ("CORE_BANKING_URL", "BALANCE_SOURCE", "--skip-gap-repair"):
        assert name in message
    assert count(session, "SELECT count(*) FROM job_runs") == 0  # nothing Running, nothing at all
    skipped = CliRunner().invoke(
        cli, ["run", "qualification", "--month", str(LAST_MONTH), "--skip-gap-repair"]
    )
    get_settings.cache_clear()
    assert skipped.exit_code == 0, skipped.output
    reason = session.execute(
        text("SELECT disqualification_reason FROM monthly_qualifications")
    ).scalar_one()
    assert "MISSING_DATA" in reason


def test_report_month_without_data_says_so(session: Session) -> None:
    future = Month.of(Month.of(date.today()).next_first)
    result = CliRunner().invoke(cli, ["report", "month", "--month", str(future)])
    assert isinstance(result.exception, UserError)
    assert str(result.exception) == (
        f"no data for {future}: no balance checks and no qualification results"
    )
    customer = create_customer(session)
    create_check(session, customer, check_date=LAST_MONTH.first + timedelta(days=2))
    session.commit()
    pending = CliRunner().invoke(cli, ["report", "month", "--month", str(LAST_MONTH)])
    assert isinstance(pending.exception, UserError)
    assert "has not been qualified" in str(pending.exception)
    assert f"run qualification --month {LAST_MONTH}" in str(pending.exception)


def test_customer_import_refuses_an_unwritable_rejects_path_first(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{HEADER}\nA1,Dana,Levi,,050-7123456,p,true\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["customers", "import", str(path), "--rejects", "/no/such/dir/r.csv"]
    )
    assert isinstance(result.exception, UserError) and "--rejects" in str(result.exception)
    assert count(session, "SELECT count(*) FROM customers") == 0
    assert count(session, "SELECT count(*) FROM job_runs") == 0


def test_customer_import_is_audited_without_values(session: Session, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        f"{HEADER}\nA1,Dana,Levi,dana@example.com,050-7123456,p,true\n"
        "A2,Avi,Cohen,,050-7123457,p,true\n",
        encoding="utf-8",
    )
    CliRunner().invoke(cli, ["customers", "import", str(path)])
    path.write_text(
        f"{HEADER}\nA1,Dana,Levi,dana@example.com,050-7123458,p,true\n"
        "A2,Avi,Cohen-Levi,,garbage,p,true\n",
        encoding="utf-8",
    )
    again = CliRunner().invoke(cli, ["customers", "import", str(path), "--format", "json"])
    assert again.exit_code == 0, again.output  # warnings only: nothing rejected or skipped
    rows = session.execute(
        text(
            "SELECT details, user_id, correlation_id FROM audit_log "
            "WHERE entity_type = 'CustomerImport' ORDER BY timestamp"
        )
    ).all()
    assert len(rows) == 2
    details = rows[1].details
    assert details["updated"] == 2 and details["rows"] == 2
    assert details["fields_changed"] == {"phone_number": 2, "last_name": 1, "phone_raw": 1}
    assert details["warnings_by_field"] == {"phone_number": 1}
    text_of = json.dumps([r.details for r in rows])
    for value in ("Cohen-Levi", "garbage", "0507123458", "+972507123458", "dana@"):
        assert value not in text_of  # counts and field names, never values
    assert rows[1].user_id and rows[1].user_id.startswith("cli")
    run_correlation = session.execute(
        text("SELECT correlation_id FROM job_runs WHERE job = 'customer_import' "
             "ORDER BY started_at DESC LIMIT 1")
    ).scalar_one()  # fmt: skip
    assert rows[1].correlation_id == run_correlation


def test_an_extract_of_another_day_is_skipped_line_by_line(
    session: Session, tmp_path: Path
) -> None:
    customer = create_customer(session)
    session.commit()
    day = date.today() - timedelta(days=10)
    path = tmp_path / "eod.csv"
    path.write_text(
        f"account_number,balance,as_of_date\n{customer.account_number},20000.00,"
        f"{day + timedelta(days=1)}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli, ["balances", "import", str(path), "--date", str(day), "--format", "json"]
    )
    assert result.exit_code == 3, result.output
    row = json.loads(result.stdout)[0]
    assert (row["rows"], row["accepted"], row["skipped"], row["checked"]) == (1, 0, 1, 0)
    assert f"balance as of {day + timedelta(days=1)}, not {day}" in result.stderr
