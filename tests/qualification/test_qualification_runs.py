"""Qualification runs: immutability, concurrency, recompute, audit, gap repair, failures."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.db.session import SessionScope
from app.models import AuditLog, DailyBalanceCheck, JobRun, MonthlyQualification, SystemEvent
from app.observability import metrics
from tests.qualification.helpers import day, fill_month, qualify
from tests.support.factories import create_customer, create_notification, utcnow

OCT = "2026-10"


def _rows(session: Session) -> list[MonthlyQualification]:
    session.expire_all()
    return list(
        session.scalars(select(MonthlyQualification).order_by(MonthlyQualification.customer_id))
    )


def _three_customers(session: Session) -> list[Any]:
    good = create_customer(session)
    fill_month(session, good, OCT)
    gap = create_customer(session)
    fill_month(session, gap, OCT, skip=[10])
    low = create_customer(session)
    fill_month(session, low, OCT, balances={4: "100.00"})
    session.commit()
    return [good, gap, low]


def test_rerun_never_duplicates_or_changes_rows(session: Session) -> None:
    _three_customers(session)
    first = qualify(OCT, gap_repair=None)
    before = [(r.id, r.qualified, r.calculated_at, r.correlation_id) for r in _rows(session)]
    second = qualify(OCT, gap_repair=None)
    after = [(r.id, r.qualified, r.calculated_at, r.correlation_id) for r in _rows(session)]
    assert (first.written.rows, second.written.rows) == (3, 0)
    assert before == after and len(after) == 3
    assert second.totals.rows == 3 and second.totals.qualified == 1


def test_a_late_customer_is_added_by_a_rerun_without_touching_others(session: Session) -> None:
    _three_customers(session)
    qualify(OCT, gap_repair=None)
    late = create_customer(session)
    fill_month(session, late, OCT)
    session.commit()
    again = qualify(OCT, gap_repair=None)
    assert (again.written.rows, again.written.qualified, again.totals.rows) == (1, 1, 4)


def test_concurrent_runs_write_one_set_of_rows(session: Session) -> None:
    for _ in range(20):
        c = create_customer(session)
        fill_month(session, c, OCT)
    session.commit()
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def go() -> None:
        try:
            barrier.wait()
            results.append(qualify(OCT, gap_repair=None, triggered_by="thread"))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(r.written.rows for r in results) == [0, 0, 20]
    assert len(_rows(session)) == 20
    audited = session.execute(
        text("SELECT count(*) FROM audit_log WHERE entity_type = 'Qualification'")
    ).scalar_one()
    assert audited == 20
    finished = session.scalars(select(JobRun.status).where(JobRun.job == "qualification"))
    assert list(finished) == ["Finished"] * 3


def test_audit_one_row_per_qualification_plus_the_run_summary(session: Session) -> None:
    customers = _three_customers(session)
    result = qualify(OCT, gap_repair=None, user_id="cli:ops")
    audit = list(
        session.scalars(select(AuditLog).where(AuditLog.correlation_id == result.correlation_id))
    )
    per_row = [a for a in audit if a.entity_type == "Qualification"]
    assert len(per_row) == 3
    assert {a.operation for a in per_row} == {"INSERT"}
    assert {a.service_name for a in per_row} == {"QualificationEngine"}
    # A claimed CLI operator is the database login (migration 0010), never a free label.
    login = session.execute(text("SELECT session_user")).scalar_one()
    assert {a.user_id for a in per_row} == {f"cli:{login}"}
    assert {a.db_user for a in per_row} == {login}
    assert {a.new_values["customer_id"] for a in per_row} == {str(c.id) for c in customers}
    (summary,) = [a for a in audit if a.entity_type == "QualificationRun"]
    assert (summary.operation, summary.entity_id) == ("PROCESS", result.run_id)
    assert summary.details is not None
    assert summary.details["correlation_id"] == str(result.correlation_id)
    assert summary.details["totals"]["qualified"] == 1
    assert summary.details["totals"]["missing_data"] == 1
    assert summary.details["totals"]["below_threshold"] == 1
    run = session.get(JobRun, result.run_id)
    assert run is not None
    assert (run.job, run.run_key, run.status) == ("qualification", OCT, "Finished")
    assert run.finished_at is not None and run.stats["written"]["rows"] == 3


def test_recompute_changes_only_rows_without_a_notification_and_is_audited(
    session: Session,
) -> None:
    notified = create_customer(session)
    fill_month(session, notified, OCT)
    fixed = create_customer(session)
    fill_month(session, fixed, OCT, skip=[20])
    session.commit()
    first = qualify(OCT, gap_repair=None)
    notified_row = session.scalars(
        select(MonthlyQualification).where(MonthlyQualification.customer_id == notified.id)
    ).one()
    create_notification(session, notified_row)
    # New facts: the missing day arrives; the notified customer's day 3 is corrected down.
    fill_month(session, fixed, OCT, from_day=20, skip=range(21, 32))
    session.execute(
        text(
            "UPDATE daily_balance_checks SET balance = 10, passes_threshold = false "
            "WHERE customer_id = :c AND check_date = :d"
        ),
        {"c": notified.id, "d": day(OCT, 3)},
    )
    session.commit()

    plain = qualify(OCT, gap_repair=None)
    assert plain.written.rows == 0 and plain.totals.qualified == 1  # immutable without flag

    again = qualify(OCT, recompute=True, gap_repair=None, user_id="cli:ops")
    assert again.recomputed is not None and again.recomputed.rows == 1
    rows = {r.customer_id: r for r in _rows(session)}
    assert rows[fixed.id].qualified is True and rows[fixed.id].disqualification_reason is None
    assert rows[fixed.id].correlation_id == again.correlation_id
    assert rows[notified.id].qualified is True  # it has its SMS: never rewritten
    assert rows[notified.id].correlation_id == first.correlation_id
    (update,) = session.scalars(
        select(AuditLog).where(
            AuditLog.correlation_id == again.correlation_id, AuditLog.operation == "UPDATE"
        )
    )
    assert update.old_values is not None and update.new_values is not None
    assert update.old_values["disqualification_reason"] == "MISSING_DATA"
    login = session.execute(text("SELECT session_user")).scalar_one()
    assert update.new_values["qualified"] is True and update.user_id == f"cli:{login}"
    run = session.get(JobRun, again.run_id)
    assert run is not None and run.stats["recompute"] is True


@dataclass
class Report:
    gaps_found: int
    filled: int
    still_missing: int
    still_missing_customer_ids: list[Any]


def test_gap_repair_runs_first_and_unfilled_gaps_are_reported(session: Session) -> None:
    repairable = create_customer(session)
    fill_month(session, repairable, OCT, skip=[7])
    hopeless = create_customer(session)
    fill_month(session, hopeless, OCT, skip=[8])
    session.commit()
    calls: list[tuple[date, date]] = []

    def repair(scope: SessionScope, start: date, end: date) -> Report:
        # A real repair over the test data: the source has a balance for one of the gaps.
        calls.append((start, end))
        with Session(session.get_bind()) as s:
            s.add(
                DailyBalanceCheck(
                    customer_id=repairable.id,
                    check_date=day(OCT, 7),
                    balance=Decimal("30000"),
                    passes_threshold=True,
                    check_timestamp=utcnow(),
                    data_quality_flag="GAP_REPAIRED",
                )
            )
            s.commit()
        return Report(2, 1, 1, [hopeless.id])

    before = metrics.MISSING_DATA_CUSTOMERS._value.get()  # noqa: SLF001
    result = qualify(OCT, gap_repair=repair)
    assert calls == [(date(2026, 10, 1), date(2026, 10, 31))]
    assert result.gap_repair == {"gaps_found": 2, "filled": 1, "still_missing": 1}
    assert (result.totals.qualified, result.totals.reasons["MISSING_DATA"]) == (1, 1)
    (warning,) = session.scalars(
        select(SystemEvent).where(SystemEvent.event_type == "qualification.missing_data")
    )
    assert warning.severity == "WARNING"
    assert warning.event_data is not None
    assert warning.event_data["missing_data_customers"] == 1
    assert warning.correlation_id == result.correlation_id
    assert metrics.MISSING_DATA_CUSTOMERS._value.get() == 1  # noqa: SLF001
    assert before is not None


def test_a_failing_step_marks_the_run_failed_and_writes_nothing(session: Session) -> None:
    _three_customers(session)

    def broken(scope: SessionScope, start: date, end: date) -> Report:
        raise ConnectionError("core banking unreachable")

    with pytest.raises(ConnectionError):
        qualify(OCT, gap_repair=broken)
    assert _rows(session) == []
    run = session.scalars(select(JobRun)).one()
    assert run.status == "Failed" and run.error == "ConnectionError: core banking unreachable"
    events = session.scalars(
        select(SystemEvent.event_type).where(SystemEvent.severity == "ERROR")
    ).all()
    assert events == ["qualification.failed"]


def test_phone_change_after_verification_is_revalidated(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT)
    session.commit()
    qualify("2026-09", gap_repair=None)  # a month without checks: nothing to verify
    session.execute(
        text(
            "UPDATE customers SET last_verified = LOCALTIMESTAMP - interval '1 day', "
            "phone_number = '03-6123456', updated_at = LOCALTIMESTAMP WHERE id = :i"
        ),
        {"i": c.id},
    )
    session.commit()
    result = qualify(OCT, gap_repair=None)
    assert result.phones == {"revalidated": 1, "by_status": {"NOT_MOBILE": 1}}
    assert _rows(session)[0].disqualification_reason == "INVALID_PHONE"
    # Verified now: the next run needs no Python per customer.
    assert qualify(OCT, gap_repair=None).phones["revalidated"] == 0


def test_month_boundaries_exclude_neighbouring_days(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT)
    fill_month(session, c, "2026-09", balance="1.00")
    fill_month(session, c, "2026-11", balance="1.00", skip=range(2, 31))
    session.commit()
    result = qualify(OCT, gap_repair=None)
    assert result.totals.qualified == 1
    assert _rows(session)[0].qualifying_days == 31
    assert day(OCT, 31) + timedelta(days=1) == date(2026, 11, 1)
