"""Operator commands: run balance-checks, balances import, gap repair, future dates."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.balances.day import today_local
from app.cli.common import UserError
from app.cli.main import cli
from app.devtools.simulators.core_banking import CoreBankingThread
from tests.balances.helpers import DAY, checks_by_account, make_customers
from tests.balances.helpers import write_extract as extract_file
from tests.support.db import count


def test_run_balance_checks_over_http(session: Session, core_banking: CoreBankingThread) -> None:
    make_customers(session, 9)
    first = session.execute(text("SELECT min(account_number) FROM customers")).scalar_one()
    core_banking.config.missing_accounts = [first]
    result = CliRunner().invoke(
        cli, ["run", "balance-checks", "--date", DAY.isoformat(), "--shards", "3",
              "--format", "json"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)[0]
    assert (row["customers"], row["checked"], row["missing"]) == (9, 8, 1)
    assert len(checks_by_account(session)) == 8


def test_balances_import_reports_bad_rows_and_unknown_accounts(
    session: Session, tmp_path: Path
) -> None:
    a, b = make_customers(session, 2)
    path = extract_file(
        tmp_path / "eod.csv",
        [(a.account_number, "15000.00", DAY), (b.account_number, "12.345", DAY),
         ("STRANGER", "100.00", DAY)],
    )  # fmt: skip
    rejects = tmp_path / "rejects.csv"
    result = CliRunner().invoke(
        cli, ["balances", "import", str(path), "--date", DAY.isoformat(),
              "--rejects", str(rejects), "--format", "json"]
    )  # fmt: skip
    assert result.exit_code == 3, result.output  # done, with rejected lines
    row = json.loads(result.stdout.splitlines()[0])[0]
    assert (row["checked"], row["rows"], row["accepted"], row["rejected"]) == (1, 3, 1, 2)
    with rejects.open(encoding="utf-8") as handle:
        problems = {
            r["account_number"]: (r["outcome"], r["reason"]) for r in csv.DictReader(handle)
        }
    assert problems == {
        b.account_number: ("rejected", "balance has more than two decimals"),
        "STRANGER": ("rejected", "unknown account (no such customer)"),
    }
    assert set(checks_by_account(session)) == {a.account_number}


def test_future_date_and_bad_date_are_refused(session: Session) -> None:
    tomorrow = (today_local() + timedelta(days=1)).isoformat()
    for args in (["run", "balance-checks", "--date", tomorrow, "--source", "file:/nope"],
                 ["enqueue", "balance-checks", "--date", tomorrow],
                 ["run", "balance-checks", "--date", "2026-13-01"]):  # fmt: skip
        result = CliRunner().invoke(cli, args)
        assert isinstance(result.exception, UserError), result.output
    assert count(session, "SELECT count(*) FROM job_runs") == 0


def test_enqueue_prints_the_run_id(session: Session) -> None:
    from worker.tasks import broker

    broker.flush_all()
    result = CliRunner().invoke(
        cli, ["enqueue", "balance-checks", "--date", DAY.isoformat(), "--shards", "2"]
    )
    assert result.exit_code == 0, result.output
    run_id = result.output.strip()
    assert count(session, "SELECT count(*) FROM job_shards WHERE run_id = :r", r=run_id) == 2
    assert len(broker.queues["balances"].queue) == 2
    broker.flush_all()
