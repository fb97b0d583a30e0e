"""``premium-notify report qualifications | month | progress`` over real data."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from tests.qualification.helpers import fill_month, qualify
from tests.support.factories import create_customer, create_delivery_status, create_notification

OCT = "2026-10"
runner = CliRunner()


def _month_with_results(session: Session) -> dict[str, object]:
    good = create_customer(session, account_number="A-1")
    fill_month(session, good, OCT)
    gap = create_customer(session, account_number="A-2")
    fill_month(session, gap, OCT, skip=[10])
    low = create_customer(session, account_number="A-3", is_active=False)
    fill_month(session, low, OCT, balances={4: "100.00"})
    good2 = create_customer(session, account_number="A-4")
    fill_month(session, good2, OCT)
    session.commit()
    qualify(OCT, gap_repair=None)
    from app.models import MonthlyQualification

    rows = {
        q.customer_id: q
        for q in session.query(MonthlyQualification).filter(MonthlyQualification.qualified)
    }
    delivered = create_notification(
        session, rows[good.id], submission_status="Submitted", carrier_reference_id="SM1"
    )
    create_delivery_status(session, delivered, status="Delivered", final_status=True)
    create_notification(
        session, rows[good2.id], submission_status="Submitted", carrier_reference_id="SM2"
    )
    session.commit()
    return {"good": good}


def test_report_qualifications_csv_has_the_contract_columns(session: Session) -> None:
    _month_with_results(session)
    result = runner.invoke(cli, ["report", "qualifications", "--month", OCT, "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "account_number,qualification_month,qualified,qualifying_days,"
        "total_days_in_month,disqualification_reason",
        "A-1,2026-10-01,true,31,31,",
        "A-2,2026-10-01,false,30,31,MISSING_DATA",
        'A-3,2026-10-01,false,30,31,"INACTIVE,BELOW_THRESHOLD"',
        "A-4,2026-10-01,true,31,31,",
    ]
    assert list(csv.reader(io.StringIO(result.output)))[3][5] == "INACTIVE,BELOW_THRESHOLD"


def test_report_qualifications_json_and_table(session: Session) -> None:
    _month_with_results(session)
    result = runner.invoke(cli, ["report", "qualifications", "--month", OCT, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[1] == {
        "account_number": "A-2",
        "qualification_month": "2026-10-01",
        "qualified": False,
        "qualifying_days": 30,
        "total_days_in_month": 31,
        "disqualification_reason": "MISSING_DATA",
    }
    table = runner.invoke(cli, ["report", "qualifications", "--month", OCT, "--qualified-only"])
    assert table.exit_code == 0 and "A-1" in table.output and "A-2" not in table.output


def test_report_month_is_the_seed_performance_report_plus_reasons(session: Session) -> None:
    _month_with_results(session)
    result = runner.invoke(cli, ["report", "month", "--month", OCT, "--format", "json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert report == {
        "month": OCT,
        "evaluated": 4,
        "qualified": 2,
        "qualification_rate": 50.0,
        "disqualified": 2,
        "reason_inactive": 1,
        "reason_missing_data": 1,
        "reason_below_threshold": 1,
        "reason_invalid_phone": 0,
        "notifications": 2,
        "sms_sent": 2,
        "sms_failed": 0,
        "delivered": 1,
        "delivery_rate": 50.0,
        # issue 20: opt-outs, segments and cost (the carrier reported neither yet)
        "skipped_opted_out": 0,
        "opted_out_by_carrier": 0,
        "segments": 2,
        "segments_estimated": 2,
        "messages_priced": 0,
        "cost": None,
        "cost_unit": None,
    }
    table = runner.invoke(cli, ["report", "month", "--month", OCT])
    assert "qualification_rate" in table.output and "50.0" in table.output


def test_report_progress_shows_who_dropped_out_on_which_day(session: Session) -> None:
    steady = create_customer(session)
    fill_month(session, steady, OCT, skip=range(11, 32))
    dips = create_customer(session)
    fill_month(session, dips, OCT, skip=range(11, 32), balances={4: "14000.00"})
    gap = create_customer(session)
    fill_month(session, gap, OCT, skip=[7, *range(11, 32)])
    late = create_customer(session, phone_number="03-6123456", phone_is_valid_mobile=False)
    fill_month(session, late, OCT, from_day=3, skip=range(11, 32))
    session.commit()
    result = runner.invoke(cli, ["report", "progress", "--month", OCT, "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["through"] == "2026-10-10"  # the latest day with checks
    assert (data["evaluated"], data["on_track"], data["dropped"]) == (4, 1, 3)
    assert data["on_track_eligible"] == 1
    by_day = {d["day"]: d for d in data["days"]}
    assert by_day["2026-10-01"]["dropped_missing_data"] == 1  # joined on the 3rd
    assert by_day["2026-10-04"]["dropped_below_threshold"] == 1
    assert by_day["2026-10-07"]["dropped_missing_data"] == 1
    assert by_day["2026-10-10"]["still_on_track"] == 1
    early = runner.invoke(
        cli, ["report", "progress", "--month", OCT, "--through", "2026-10-05", "--format", "csv"]
    )
    assert early.exit_code == 0
    assert early.output.splitlines()[-1] == "2026-10-05,0,0,2"


def test_bad_month_is_a_clean_operator_error(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url}
    exe = os.path.join(os.path.dirname(sys.executable), "premium-notify")
    for args in (
        ["report", "qualifications", "--month", "2026-13"],
        ["run", "qualification", "--month", "2999-01"],
        ["report", "progress", "--month", OCT, "--through", "2026-11-02"],
    ):
        proc = subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_run_qualification_command_prints_the_summary(session: Session) -> None:
    _ = create_customer(session)
    c = create_customer(session)
    fill_month(session, c, OCT)
    session.commit()
    result = runner.invoke(
        cli, ["run", "qualification", "--month", OCT, "--skip-gap-repair", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.output.splitlines()[-1])
    assert (summary["written"], summary["qualified"], summary["rows"]) == (1, 1, 1)


def test_enqueue_qualification_sends_the_run_message(database_url: str) -> None:
    import worker.tasks

    broker = worker.tasks.broker  # DRAMATIQ_BROKER=stub in the tests
    broker.flush_all()
    result = runner.invoke(cli, ["enqueue", "qualification", "--month", OCT, "--no-notify"])
    assert result.exit_code == 0, result.output
    assert "enqueued qualification of 2026-10" in result.output
    queue = broker.queues["qualification"]
    import dramatiq

    message = dramatiq.Message.decode(queue.get_nowait())
    assert (message.actor_name, message.args) == ("qualification.run_month", ("2026-10",))
    assert message.kwargs == {"recompute": False, "start_notifications": False}
