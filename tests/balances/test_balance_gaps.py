"""Gap repair fills (customer, day) pairs without a check and reports what stays missing."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.balances.gaps import kick_window, repair_gaps
from app.balances.sources.core_banking import CoreBankingSource
from app.db.session import session_scope
from app.devtools.simulators.core_banking import CoreBankingThread, balance_for
from tests.balances.helpers import make_customers
from tests.support.db import count
from tests.support.factories import create_check

START, END = date(2026, 9, 1), date(2026, 9, 5)


def test_gaps_are_rechecked_as_of_their_day(
    session: Session, core_banking: CoreBankingThread
) -> None:
    customers = make_customers(session, 4)
    gone = make_customers(session, 1, account_number="GONE")[0]
    make_customers(session, 1, is_active=False)
    # Customer 0 is complete; customer 1 misses two days; the others all five.
    for day in range(5):
        create_check(session, customers[0], check_date=START + timedelta(days=day))
    for day in (0, 2, 4):
        create_check(session, customers[1], check_date=START + timedelta(days=day))
    session.commit()
    core_banking.config.missing_accounts = ["GONE"]
    report = repair_gaps(session_scope, START, END, source=CoreBankingSource(core_banking.base_url))
    assert report.gaps_found == 2 + 2 * 5 + 5
    assert report.filled == 12
    assert report.still_missing == 5
    assert report.still_missing_customer_ids == [gone.id]
    assert report.missing_by_reason == {"not_found": 5}
    stored = session.execute(
        text("SELECT balance FROM daily_balance_checks WHERE customer_id = :c AND check_date = :d"),
        {"c": customers[1].id, "d": START + timedelta(days=1)},
    ).scalar_one()
    assert stored == balance_for(7, customers[1].account_number, START + timedelta(days=1))
    # Nothing left to do: a second repair finds only the unanswerable customer.
    again = repair_gaps(session_scope, START, END, source=CoreBankingSource(core_banking.base_url))
    assert (again.gaps_found, again.filled, again.still_missing) == (5, 0, 5)
    assert count(session, "SELECT count(*) FROM job_runs WHERE job = 'gap_repair'") == 2


def test_window_and_clamp_to_yesterday(session: Session, core_banking: CoreBankingThread) -> None:
    assert kick_window(date(2026, 3, 1)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert kick_window(date(2026, 1, 15)) == (date(2025, 12, 1), date(2026, 1, 14))
    make_customers(session, 1)
    from app.balances.gaps import today_local

    today = today_local()
    report = repair_gaps(
        session_scope,
        today - timedelta(days=1),
        today,
        source=CoreBankingSource(core_banking.base_url),
    )
    assert report.filled == 1  # yesterday only: today's balance is not final yet
