"""The qualification rule over real PostgreSQL: every calendar day, reasons, phones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Customer, DailyBalanceCheck, MonthlyQualification
from app.months import Month, is_closed
from app.qualification.months import MonthNotClosed, ensure_closed
from app.qualification.repository import decisions
from tests.qualification.helpers import day, fill_month, qualify
from tests.support.factories import create_customer, utcnow

OCT = "2026-10"


def _row(session: Session, customer: Customer, month: str = OCT) -> MonthlyQualification:
    session.expire_all()
    return session.scalars(
        select(MonthlyQualification).where(
            MonthlyQualification.customer_id == customer.id,
            MonthlyQualification.qualification_month == Month.parse(month).first,
        )
    ).one()


def _qualify(month: str = OCT) -> Any:
    return qualify(month, gap_repair=None, triggered_by="test")


def test_exactly_the_threshold_every_day_qualifies(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, balance="15000.00")
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.qualifying_days, row.total_days_in_month) == (True, 31, 31)
    assert row.disqualification_reason is None
    assert row.phone_number_validated is True


def test_one_cent_below_on_one_day_disqualifies(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, balance="15000.00", balances={17: "14999.99"})
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.qualifying_days) == (False, 30)
    assert row.disqualification_reason == "BELOW_THRESHOLD"


def test_one_missing_day_is_missing_data_not_a_pass(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, skip=[31])
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.qualifying_days, row.total_days_in_month) == (False, 30, 31)
    assert row.disqualification_reason == "MISSING_DATA"


def test_duplicate_imports_never_count_a_day_twice(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, skip=[5])
    session.commit()
    # Re-importing the same days (as a redelivered balance batch does) adds nothing ...
    values = {
        "customer_id": c.id,
        "check_date": day(OCT, 1),
        "balance": 20000,
        "passes_threshold": True,
        "check_timestamp": utcnow(),
    }
    session.execute(pg_insert(DailyBalanceCheck).values(values).on_conflict_do_nothing())
    session.commit()
    # ... and a plain duplicate is refused by UNIQUE (customer_id, check_date).
    with pytest.raises(IntegrityError):
        session.execute(insert(DailyBalanceCheck), [values])
    session.rollback()
    _qualify()
    row = _row(session, c)
    assert (row.qualifying_days, row.disqualification_reason) == (30, "MISSING_DATA")


@pytest.mark.parametrize(("month", "days"), [("2024-02", 29), ("2025-02", 28)])
def test_february_has_its_calendar_days(session: Session, month: str, days: int) -> None:
    full = create_customer(session)
    fill_month(session, full, month)
    short = create_customer(session)
    fill_month(session, short, month, skip=[days])  # e.g. no check on 29 February 2024
    session.commit()
    _qualify(month)
    assert (_row(session, full, month).qualified, _row(session, full, month).qualifying_days) == (
        True,
        days,
    )
    row = _row(session, short, month)
    assert (row.qualified, row.total_days_in_month) == (False, days)
    assert row.disqualification_reason == "MISSING_DATA"


def test_customer_who_joined_mid_month_is_missing_data(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, from_day=15)
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.qualifying_days, row.disqualification_reason) == (
        False,
        17,
        "MISSING_DATA",
    )


@pytest.mark.parametrize("is_active", [False, None])
def test_inactive_customer_never_qualifies(session: Session, is_active: bool | None) -> None:
    c = create_customer(session)
    # An explicit UPDATE: the ORM would let the server default (true) fill a None.
    session.execute(
        text("UPDATE customers SET is_active = :a WHERE id = :i"), {"a": is_active, "i": c.id}
    )
    fill_month(session, c, OCT)
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.disqualification_reason) == (False, "INACTIVE")


@pytest.mark.parametrize(
    ("phone", "qualified", "validated"),
    [
        ("03-6123456", False, False),  # Tel Aviv landline
        ("12345", False, False),  # malformed
        (None, False, False),  # none on file
        ("07911 123456", False, False),  # a UK mobile without +44 reads as an Israeli number
        ("+44 7911 123456", True, True),  # a foreign mobile in E.164 can receive the SMS
        ("+972 52 765 4321", True, True),
    ],
)
def test_phone_is_checked_again_at_calculation_time(
    session: Session, phone: str | None, qualified: bool, validated: bool
) -> None:
    # The stored verdict says MOBILE, but last_verified is NULL: it is recomputed.
    c = create_customer(session, phone_number=phone, phone_status="MOBILE")
    fill_month(session, c, OCT)
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualified, row.phone_number_validated) == (qualified, validated)
    assert row.disqualification_reason == (None if qualified else "INVALID_PHONE")
    session.refresh(c)
    assert c.last_verified is not None and c.last_verified >= c.updated_at
    assert c.phone_is_valid_mobile is validated


def test_current_phone_verdict_is_trusted_without_reclassifying(session: Session) -> None:
    # last_verified after updated_at: the stored verdict is current and used as is (no
    # Python per unchanged customer). A deliberately contrary verdict proves it.
    c = create_customer(
        session, phone_number="03-6123456", phone_status="MOBILE", phone_is_valid_mobile=True
    )
    session.execute(
        text("UPDATE customers SET last_verified = updated_at + interval '1 second' WHERE id=:i"),
        {"i": c.id},
    )
    fill_month(session, c, OCT)
    session.commit()
    result = _qualify()
    assert result.phones["revalidated"] == 0
    assert _row(session, c).qualified is True


def test_negative_balance_day_fails_the_threshold(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT, balances={3: "-250.00"})
    session.commit()
    _qualify()
    row = _row(session, c)
    assert (row.qualifying_days, row.disqualification_reason) == (30, "BELOW_THRESHOLD")


def test_every_reason_in_the_documented_order(session: Session) -> None:
    c = create_customer(session, is_active=False, phone_number="03-6123456")
    fill_month(session, c, OCT, skip=[2], balances={9: "100.00"})
    session.commit()
    _qualify()
    assert _row(session, c).disqualification_reason == (
        "INACTIVE,MISSING_DATA,BELOW_THRESHOLD,INVALID_PHONE"
    )


def test_customers_without_any_check_in_the_month_are_not_evaluated(session: Session) -> None:
    checked = create_customer(session)
    fill_month(session, checked, OCT)
    other_month_only = create_customer(session)
    fill_month(session, other_month_only, "2026-09")
    create_customer(session)  # no checks at all
    session.commit()
    result = _qualify()
    assert result.totals.rows == 1


@pytest.mark.parametrize("month", ["2026-03", "2026-10"])
def test_daylight_saving_months_count_calendar_days(session: Session, month: str) -> None:
    c = create_customer(session)
    fill_month(session, c, month)
    session.commit()
    _qualify(month)
    row = _row(session, c, month)
    assert (row.qualified, row.qualifying_days, row.total_days_in_month) == (True, 31, 31)


@pytest.mark.parametrize(
    ("month", "closed_at_utc", "open_at_utc"),
    [
        # Israel is UTC+3 in March after the 27th: the month closes at 21:00 UTC.
        ("2026-03", datetime(2026, 3, 31, 21, 0, tzinfo=UTC), datetime(2026, 3, 31, 20, 59)),
        # ... and UTC+2 after 25 October: it closes at 22:00 UTC.
        ("2026-10", datetime(2026, 10, 31, 22, 0, tzinfo=UTC), datetime(2026, 10, 31, 21, 59)),
    ],
)
def test_month_closes_at_local_midnight_across_dst(
    month: str, closed_at_utc: datetime, open_at_utc: datetime
) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("Asia/Jerusalem")
    m = Month.parse(month)
    assert is_closed(m, tz, closed_at_utc)
    assert not is_closed(m, tz, open_at_utc)
    with pytest.raises(MonthNotClosed, match="not closed yet"):
        ensure_closed(m, tz, open_at_utc)


def test_open_month_is_refused_before_anything_is_written(session: Session) -> None:
    with pytest.raises(MonthNotClosed, match="2099-05"):
        qualify("2099-05", gap_repair=None)
    assert session.execute(text("SELECT count(*) FROM job_runs")).scalar_one() == 0


def test_deciding_query_reads_the_checks_once(session: Session) -> None:
    c = create_customer(session)
    fill_month(session, c, OCT)
    session.commit()
    plan = decisions.explain_decide(session, Month.parse(OCT))

    def relations(node: dict[str, Any]) -> list[str]:
        found = [node["Relation Name"]] if "Relation Name" in node else []
        for child in node.get("Plans", []):
            found += relations(child)
        return found

    # One scan of the checks: the parent or (pruned to the month) its one partition.
    scans = [r for r in relations(plan[0]["Plan"]) if r.startswith("daily_balance_checks")]
    assert scans in (["daily_balance_checks"], ["daily_balance_checks_p202610"])
