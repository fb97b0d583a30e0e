"""No run stays Running for ever: leases, heartbeats, stale runs in `status`, takeover."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.balances import gaps
from app.balances.day import run_day, start_day
from app.balances.sources.eod_file import EodFileSource
from app.cli.main import cli
from app.cli.status import human_duration, short_key
from app.customers.importer import import_customers
from app.db import leases
from app.db.session import session_scope
from app.maintenance import retention
from app.models import JobRun
from app.months import Month
from app.qualification import service
from tests.conftest import ensure_test_partitions
from tests.support.factories import create_customer, utcnow

DAY = date.today() - timedelta(days=3)


def _dead_run(session: Session, job: str, run_key: str, minutes_ago: int = 30) -> uuid.UUID:
    """A run whose process died: Running, its lease expired ``minutes_ago``."""
    run = JobRun(
        job=job,
        run_key=run_key,
        started_at=utcnow() - timedelta(minutes=minutes_ago + 10),
        heartbeat_at=utcnow() - timedelta(minutes=minutes_ago + 10),
        lease_expires_at=utcnow() - timedelta(minutes=minutes_ago),
        lease_owner="gone-host:4242",
    )
    session.add(run)
    session.commit()
    return run.id


def _run(session: Session, run_id: uuid.UUID) -> JobRun:
    session.expire_all()
    run = session.get(JobRun, run_id)
    assert run is not None
    return run


def test_heartbeat_renews_the_lease_while_the_block_runs(session: Session) -> None:
    run = JobRun(job="gap_repair", run_key="k")
    session.add(run)
    session.commit()
    with leases.Heartbeat(session_scope, run.id, lease_seconds=60, beat_seconds=0.05):
        first = _run(session, run.id).heartbeat_at
        time.sleep(0.3)
        later = _run(session, run.id)
    assert first is not None and later.heartbeat_at is not None and later.heartbeat_at > first
    assert later.lease_expires_at is not None
    assert later.lease_expires_at > later.heartbeat_at + timedelta(seconds=59)
    assert later.lease_owner and ":" in later.lease_owner
    # A finished run is never revived by a late beat.
    session.execute(text("UPDATE job_runs SET status = 'Finished' WHERE id = :id"), {"id": run.id})
    session.commit()
    with session_scope() as s:
        assert leases.renew(s, run.id) is False


def test_status_shows_a_stale_run_and_check_fails(session: Session) -> None:
    _dead_run(session, "qualification", "2026-10")
    fresh = JobRun(job="gap_repair", run_key="2026-10-01..2026-10-31")
    session.add(fresh)
    session.commit()
    with leases.Heartbeat(session_scope, fresh.id):
        shown = CliRunner().invoke(cli, ["status", "--format", "json"])
        checked = CliRunner().invoke(cli, ["status", "--check"], env={"COLUMNS": "80"})
    runs = {r["job"]: r for r in json.loads(shown.stdout)["runs"]}
    assert runs["qualification"]["stale"] is True and runs["gap_repair"]["stale"] is False
    assert checked.exit_code == 4
    assert "attention: qualification 2026-10: stale" in checked.stdout
    assert "Stale" in checked.stdout and "gone-host:4242" in checked.stdout
    assert all(len(line) <= 80 for line in checked.stdout.splitlines()), checked.stdout


def test_status_fits_80_columns(session: Session) -> None:
    keys = (("balance_checks", "2026-11-30"), ("customer_import", "customers.csv"),
            ("gap_repair", "2026-10-01..2026-11-30"), ("notifications", "2026-10"))  # fmt: skip
    for job, key in keys:
        session.add(
            JobRun(
                job=job,
                run_key=key,
                status="Finished",
                finished_at=utcnow(),
                stats={
                    "checked": 123456,
                    "missing": 7,
                    "rejected": 3,
                    "inserted": 999999,
                    "source": "core_banking",
                    "passed": 120000,
                    "flagged": 12,
                },
            )  # fmt: skip
        )
    session.commit()
    result = CliRunner().invoke(cli, ["status"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines()), result.stdout
    assert "2026-10-01..11-30" in result.stdout  # a gap repair's window, compacted


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (3600, "1h00m"), (7325, "2h02m"), (90000, "1d01h")],
)
def test_human_durations(seconds: float, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_short_keys() -> None:
    assert short_key("2026-10-01..2026-10-31") == "2026-10-01..31"
    assert short_key("2026-10-01..2026-11-30") == "2026-10-01..11-30"
    assert short_key("2025-12-01..2026-01-31") == "2025-12-01..2026-01-31"
    assert short_key("2026-10") == "2026-10"


def test_qualification_takes_over_a_dead_run_of_its_month(session: Session) -> None:
    month = Month.of(date.today()).previous()
    dead = _dead_run(session, "qualification", str(month))
    other = _dead_run(session, "qualification", str(month.previous()))
    result = service.run_month(session_scope, month, gap_repair=None)
    assert _run(session, dead).status == "Failed"
    assert f"taken over by run {result.run_id}" in (_run(session, dead).error or "")
    assert _run(session, other).status == "Running"  # another month's: not this run's to take
    assert _run(session, result.run_id).status == "Finished"


def test_balance_day_run_takes_over_a_dead_run_of_its_day(session: Session, tmp_path: Path) -> None:
    customer = create_customer(session)
    session.commit()
    dead = _dead_run(session, "balance_checks", DAY.isoformat())
    extract = tmp_path / "eod.csv"
    extract.write_text(f"account_number,balance,as_of_date\n{customer.account_number},1.00,{DAY}\n")
    run_id, totals = run_day(session_scope, DAY, EodFileSource(extract), shard_count=2)
    assert totals["checked"] == 1
    assert _run(session, dead).status == "Failed" and str(run_id) in (
        _run(session, dead).error or ""
    )
    assert _run(session, run_id).status == "Finished"
    assert _run(session, run_id).heartbeat_at is not None  # its shards renewed the lease


def test_a_live_run_is_not_taken_over(session: Session) -> None:
    with session_scope() as s:
        live = start_day(s, DAY, shard_count=1)
    with session_scope() as s:
        again = start_day(s, DAY, shard_count=1)
    assert _run(session, live.run_id).status == "Running"  # its lease has not expired
    assert again.run_id != live.run_id


def test_gap_repair_takes_over_any_dead_gap_repair(session: Session) -> None:
    dead = _dead_run(session, "gap_repair", "2026-09-01..2026-10-31")
    report = gaps.repair_gaps(session_scope, DAY, DAY)  # no customers: no gap, no source needed
    assert report.gaps_found == 0
    assert _run(session, dead).status == "Failed"


def test_customer_import_and_retention_hold_leases(
    session: Session, tmp_path: Path, database_url: str
) -> None:
    dead = _dead_run(session, "customer_import", "old.csv")
    path = tmp_path / "c.csv"
    path.write_text(
        "account_number,first_name,last_name,email,phone_number,account_type,is_active\n"
        "L1,Dana,Levi,,050-7123456,premium,true\n",
        encoding="utf-8",
    )
    report = import_customers(session_scope, path)
    assert report.run_id is not None
    run = _run(session, uuid.UUID(report.run_id))
    assert run.status == "Finished" and run.heartbeat_at is not None
    assert _run(session, dead).status == "Failed"
    session.rollback()  # no snapshot of ours may hold the partitions the run drops
    try:
        result = retention.run(session_scope, policy=retention.Policy(cold_dir=tmp_path / "cold"))
        assert result.run_id is not None
        assert _run(session, result.run_id).heartbeat_at is not None
    finally:  # the run drops the test months past their horizon: later tests need them
        session.rollback()
        ensure_test_partitions(database_url)
