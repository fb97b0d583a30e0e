"""The customer with a bad phone, end to end: imported, checked every day, INVALID_PHONE, no SMS.

The issue's measurement: customers whose phone was malformed or missing were rejected
at import, their balances then arrived as "unknown account", and the month had no
qualification row for them. Here a month runs through the operator commands (customers
import, a balances import per day, run qualification without any core-banking source:
the month has no gaps, run notifications against the carrier simulator), and every
identifiable customer has its row with the right reason.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.config import get_settings
from app.devtools.simulators.carrier import SimulatorThread
from app.months import Month

HEADER = "account_number,first_name,last_name,email,phone_number,account_type,is_active"
CUSTOMERS = {
    # account: (phone as written, qualified, reason)
    "P-MOBILE": ("050-7123456", True, None),
    "P-MALFORMED": ("+9725", False, "INVALID_PHONE"),
    "P-DIGITS": ("12345", False, "INVALID_PHONE"),
    "P-WORDS": ("not-a-number", False, "INVALID_PHONE"),
    "P-MISSING": ("", False, "INVALID_PHONE"),
    "P-LANDLINE": ("03-1234567", False, "INVALID_PHONE"),
    "P-POOR": ("+972507123457", False, "BELOW_THRESHOLD"),
}


def _invoke(*argv: str) -> str:
    result = CliRunner().invoke(cli, list(argv))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_bad_phones_are_imported_checked_and_disqualified(
    session: Session, sms_env: SimulatorThread, tmp_path: Path
) -> None:
    month = Month.of(datetime.now(get_settings().tz).date()).previous()
    lines = [HEADER] + [
        f"{account},Dana,Levi,,{phone},premium,true" for account, (phone, _, _) in CUSTOMERS.items()
    ]
    people = tmp_path / "customers.csv"
    people.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported = json.loads(_invoke("customers", "import", str(people), "--format", "json"))[0]
    assert (imported["inserted"], imported["rejected"], imported["skipped"]) == (7, 0, 0)
    assert imported["warnings"] == 5  # four bad numbers and a landline: warned, not dropped

    day = month.first
    while day <= month.last:
        extract = tmp_path / f"eod-{day}.csv"
        extract.write_text(
            "account_number,balance,as_of_date\n"
            + "".join(
                f"{a},{'100.00' if a == 'P-POOR' else '20000.00'},{day}\n" for a in CUSTOMERS
            ),
            encoding="utf-8",
        )
        done = json.loads(
            _invoke("balances", "import", str(extract), "--date", str(day), "--format", "json")
        )[0]
        assert (done["accepted"], done["checked"], done["missing"]) == (7, 7, 0)
        day += timedelta(days=1)

    # No CORE_BANKING_URL: the month has no gaps, so gap repair needs no source.
    _invoke("run", "qualification", "--month", str(month), "--format", "json")
    rows = {
        r.account_number: r
        for r in session.execute(
            text(
                "SELECT c.account_number, q.qualified, q.disqualification_reason, "
                "q.qualifying_days, q.total_days_in_month FROM monthly_qualifications q "
                "JOIN customers c ON c.id = q.customer_id"
            )
        )
    }
    assert set(rows) == set(CUSTOMERS)  # a row for every identifiable customer
    for account, (_, qualified, reason) in CUSTOMERS.items():
        row = rows[account]
        assert row.qualified is qualified, account
        assert (row.disqualification_reason or None) == reason, account
        if account != "P-POOR":  # checked every day like everyone else
            assert row.qualifying_days == row.total_days_in_month == month.days, account

    _invoke("run", "notifications", "--month", str(month))
    assert sms_env.state.per_recipient() == {"+972507123456": 1}  # the valid mobile only
    texted = session.execute(
        text(
            "SELECT c.account_number FROM notifications n JOIN customers c ON c.id = n.customer_id"
        )
    ).scalars()
    assert list(texted) == ["P-MOBILE"]
    sent_on = session.execute(text("SELECT submission_timestamp::date FROM notifications")).scalar()
    _invoke("run", "delivery-poll", "--day", str(sent_on), "--force")
    # No run is left Running: each held a lease while it worked and closed its run.
    runs = session.execute(
        text("SELECT job, status, heartbeat_at IS NOT NULL AS beat FROM job_runs")
    ).all()
    assert {r.job for r in runs} >= {"customer_import", "balance_checks", "qualification",
                                     "gap_repair", "notifications", "delivery_poll"}  # fmt: skip
    assert [r for r in runs if r.status != "Finished" or not r.beat] == []


def test_phone_revalidation_keeps_an_invalid_number_invalid(session: Session) -> None:
    from app.db.session import session_scope
    from app.qualification import service
    from tests.support.factories import create_check, create_customer

    month = Month.of(datetime.now(get_settings().tz).date()).previous()
    customer = create_customer(
        session, phone_number=None, phone_raw="+9725", phone_status="INVALID",
        phone_is_valid_mobile=False,
    )  # fmt: skip
    create_check(session, customer, check_date=month.first)
    # Changed after its verdict (a GDPR deactivation, an edit): re-validated by the run.
    session.execute(text("UPDATE customers SET last_verified = updated_at - interval '1 day'"))
    session.commit()
    service.run_month(session_scope, month, gap_repair=None)
    session.expire_all()
    row = session.execute(
        text("SELECT phone_status, phone_raw, last_verified >= updated_at AS fresh FROM customers")
    ).one()
    assert (row.phone_status, row.phone_raw, row.fresh) == ("INVALID", "+9725", True)
