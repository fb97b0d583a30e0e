"""The day's run: every active customer once for any shard count, exact decimals,
flags, missing accounts, idempotent re-runs and redeliveries, fan-in, future dates."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.balances import repository, runs
from app.balances.checks import FutureDateError
from app.balances.day import run_day, start_day, today_local
from app.balances.shards import run_shard
from app.balances.sources.core_banking import CoreBankingSource
from app.balances.sources.eod_file import EodFileSource
from app.db.session import session_scope
from app.devtools.simulators.core_banking import CoreBankingThread, balance_for
from tests.balances.helpers import DAY, checks_by_account, make_customers
from tests.balances.helpers import write_extract as extract_file
from tests.support.db import count


def test_shard_ranges_cover_every_id_exactly_once() -> None:
    for n in (1, 2, 3, 7, 16):
        ids = [uuid.uuid4() for _ in range(500)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
        for cid in ids:
            owners = []
            for k in range(n):
                r = repository.shard_range(k, n)
                if cid >= r.low and (r.high is None or cid < r.high):
                    owners.append(k)
            assert owners == [repository.shard_of(cid, n)]


@pytest.mark.parametrize("shards", [1, 3, 7])
def test_every_active_customer_is_checked_exactly_once(
    session: Session, core_banking: CoreBankingThread, shards: int
) -> None:
    active = make_customers(session, 40)
    make_customers(session, 5, is_active=False)
    source = CoreBankingSource(core_banking.base_url, batch_size=7)
    run_id, totals = run_day(
        session_scope, DAY, source, source_spec="http", shard_count=shards, batch_size=6
    )
    checks = checks_by_account(session)
    assert set(checks) == {c.account_number for c in active}
    for c in active:
        expected = balance_for(7, c.account_number, DAY)
        row = checks[c.account_number]
        assert row["balance"] == expected
        assert row["passes_threshold"] is (expected >= Decimal("15000.00"))
        assert row["correlation_id"] is not None
    assert totals["customers"] == 40 and totals["checked"] == 40 and totals["missing"] == 0
    assert totals["inserted"] == 40
    assert totals["passed"] == sum(1 for r in checks.values() if r["passes_threshold"])
    # One audit row per check, carrying the run's correlation id.
    correlation = checks[active[0].account_number]["correlation_id"]
    assert count(
        session,
        "SELECT count(*) FROM audit_log WHERE entity_type = 'BalanceCheck' AND correlation_id = :c",
        c=correlation,
    ) == 40
    run = session.execute(
        text("SELECT status, finished_at, stats FROM job_runs WHERE id = :id"), {"id": run_id}
    ).one()
    assert run.status == "Finished" and run.finished_at is not None
    assert run.stats["checked"] == 40


def test_rerun_and_redelivered_shards_change_nothing(
    session: Session, core_banking: CoreBankingThread
) -> None:
    make_customers(session, 12)
    source = CoreBankingSource(core_banking.base_url)
    first_run, _ = run_day(session_scope, DAY, source, shard_count=3)
    before = count(session, "SELECT count(*) FROM audit_log")
    snapshot = checks_by_account(session)
    # A redelivered shard message of a finished run: nothing happens.
    outcome = run_shard(session_scope, first_run, 1, source=source)
    assert outcome.ran is False
    # A whole new run of the same day: every customer is already checked.
    second_run, totals = run_day(session_scope, DAY, source, shard_count=2)
    assert totals["inserted"] == 0 and totals["checked"] == 12
    assert checks_by_account(session) == snapshot
    assert count(session, "SELECT count(*) FROM audit_log") == before
    assert count(session, "SELECT count(*) FROM job_runs WHERE finished_at IS NOT NULL") == 2


def test_overlapping_writes_fall_back_to_on_conflict(session: Session) -> None:
    """A racing writer already stored some of the rows: the optimistic COPY hits the
    unique key, and the fallback inserts only the others, in the same transaction."""
    from app.balances.checks import CheckRow
    from app.balances.repository import write_checks

    customers = make_customers(session, 6)
    rows = [
        CheckRow(c.id, DAY, Decimal("15000.00") + i, Decimal("15000.00"), None)
        for i, c in enumerate(customers)
    ]
    corr = uuid.uuid4()
    with session_scope() as s:
        assert write_checks(s, rows[:4], corr) == 4
    with session_scope() as s:
        assert write_checks(s, rows, corr) == 2  # rows 0-3 exist: only 4 and 5 go in
        assert write_checks(s, rows, corr) == 0
    assert count(session, "SELECT count(*) FROM daily_balance_checks") == 6
    assert count(session, "SELECT count(*) FROM audit_log WHERE correlation_id = :c", c=corr) == 6


def test_flags_threshold_edges_and_missing_accounts(session: Session, tmp_path: Path) -> None:
    names = ["EDGE", "BELOW", "NEG", "STALE", "OLD", "FUTURE", "BAD", "ABSENT"]
    customers = {n: make_customers(session, 1, account_number=n)[0] for n in names}
    path = extract_file(
        tmp_path / "eod.csv",
        [
            ("EDGE", "15000.00", DAY),
            ("BELOW", "14999.99", DAY),
            ("NEG", "-120.50", DAY),
            ("STALE", "30000.00", DAY - timedelta(days=2)),
            ("OLD", "30000.00", DAY - timedelta(days=30)),
            ("FUTURE", "30000.00", DAY + timedelta(days=1)),
            ("BAD", "15000.005", DAY),
            ("NOBODY", "1.00", DAY),  # not a customer: ignored here, reported by the CLI
        ],
    )
    run_id, totals = run_day(
        session_scope, DAY, EodFileSource(path), source_spec=f"file:{path}", shard_count=2
    )
    checks = checks_by_account(session)
    assert set(checks) == {"EDGE", "BELOW", "NEG", "STALE"}
    assert checks["EDGE"]["passes_threshold"] is True
    assert checks["BELOW"]["passes_threshold"] is False
    assert checks["NEG"]["balance"] == Decimal("-120.50")
    assert checks["NEG"]["data_quality_flag"] == "NEGATIVE_BALANCE"
    assert checks["STALE"]["data_quality_flag"] == f"STALE_AS_OF:{DAY - timedelta(days=2)}"
    assert checks["EDGE"]["threshold"] == Decimal("15000.00")
    assert totals["missing"] == 4 and totals["flagged"] == 2
    assert totals["rejected"] == 3  # OLD, FUTURE (dates) and BAD (three decimals)
    assert totals["missing_by_reason"] == {"wrong_date": 2, "invalid_balance": 1, "not_found": 1}
    assert customers["ABSENT"].id not in {c for c in checks}


def test_future_date_is_refused(session: Session) -> None:
    with pytest.raises(FutureDateError, match="in the future"), session_scope() as s:
        start_day(s, today_local() + timedelta(days=1))
    assert count(session, "SELECT count(*) FROM job_runs") == 0


def test_last_shard_closes_the_run_exactly_once(session: Session) -> None:
    with session_scope() as s:
        info = start_day(s, date(2026, 10, 1), shard_count=3)
    stats = {"customers": 1, "checked": 1, "missing": 0}

    closed = []
    for shard in (2, 0, 1, 1):
        with session_scope() as s:
            repository.begin_shard(s, info.run_id, shard)
            closed.append(runs.finish_shard(s, info.run_id, shard, stats))
    assert closed == [False, False, True, False]
    assert count(
        session, "SELECT count(*) FROM system_events WHERE event_type = 'balance_checks.finished'"
    ) == 1


def test_kick_plan_starts_missing_days_and_resumes_unfinished(session: Session) -> None:
    today = date(2026, 10, 20)
    with session_scope() as s:
        done = start_day(s, today - timedelta(days=1), shard_count=1)
    with session_scope() as s:
        repository.begin_shard(s, done.run_id, 0)
        runs.finish_shard(s, done.run_id, 0, {})
    with session_scope() as s:
        stuck = start_day(s, today - timedelta(days=2), shard_count=4)
    with session_scope() as s:
        repository.begin_shard(s, stuck.run_id, 1)
        runs.finish_shard(s, stuck.run_id, 1, {})
        plan = runs.plan_kick(s, today, 3)
    assert plan.to_start == [today - timedelta(days=3), today]
    assert plan.to_resume == [(stuck.run_id, [0, 2, 3])]
