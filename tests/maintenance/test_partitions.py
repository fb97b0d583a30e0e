"""Monthly partitions (migration 0009): no catch-all, kept ahead, audited, reversible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from alembic import command
from app.cli.db import alembic_config
from app.maintenance import partitions
from app.maintenance.repository.partitions import PARTITIONED, list_partitions
from app.months import Month
from tests.conftest import drop_database, recreate_database
from tests.support.factories import create_check, create_customer

SCRATCH = f"pn_test_{os.getpid()}_partitions"


def test_the_three_tables_are_partitioned_by_month_without_a_default(db: Engine) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, p.partstrat, p.partdefid FROM pg_partitioned_table p "
                "JOIN pg_class c ON c.oid = p.partrelid"
            )
        ).all()
    found = {r.relname: r for r in rows}
    assert set(found) == set(PARTITIONED)
    assert all(r.partstrat == "r" and r.partdefid == 0 for r in rows)


def test_a_row_outside_every_partition_fails_loudly(session: Session) -> None:
    customer = create_customer(session)
    session.commit()
    with pytest.raises(DBAPIError, match="no partition of relation"):
        create_check(session, customer, check_date=date(1999, 1, 4))
        session.flush()
    session.rollback()


def test_ensure_ahead_creates_the_missing_months_once(session: Session) -> None:
    created = partitions.ensure_ahead(session, date(2031, 5, 17), months_ahead=2, months_back=1)
    session.commit()
    assert sorted(created) == sorted(f"{t}_p2031{m:02d}" for t in PARTITIONED for m in (4, 5, 6, 7))
    assert partitions.ensure_ahead(session, date(2031, 5, 17), months_ahead=2, months_back=1) == []
    months = [p.month for p in list_partitions(session, "audit_log")]
    assert {Month(2031, 5), Month(2031, 6), Month(2031, 7)} <= set(months)


def test_the_kick_keeps_two_months_ahead(session: Session) -> None:
    from worker.actors.maintenance import partitions_ensure

    partitions_ensure.fn("test")
    today = Month.of(date.today())
    ahead = [today, Month.of(today.next_first)]
    ahead.append(Month.of(ahead[1].next_first))
    for table in PARTITIONED:
        assert set(ahead) <= {p.month for p in list_partitions(session, table)}


def test_one_audit_row_per_check_across_partitions(session: Session) -> None:
    customer = create_customer(session)
    session.commit()
    session.execute(
        text(
            "INSERT INTO daily_balance_checks (customer_id, check_date, balance,"
            " passes_threshold, check_timestamp) SELECT :c, d, 20000, true, now()"
            " FROM unnest(CAST(ARRAY['2026-09-30', '2026-10-01', '2026-10-02'] AS date[])) d"
        ),
        {"c": customer.id},
    )
    session.commit()
    audited = session.scalar(
        text("SELECT count(*) FROM audit_log WHERE entity_type = 'BalanceCheck'")
    )
    assert audited == 3


@pytest.fixture
def scratch_url(database_url: str) -> Iterator[str]:
    url = recreate_database(database_url, SCRATCH)
    yield url
    drop_database(url, SCRATCH)


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t: int(conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0)
            for t in ("daily_balance_checks", "audit_log", "system_events")
        }


def _relkinds(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.scalars(
                text(
                    "SELECT relkind FROM pg_class WHERE relname IN "
                    "('daily_balance_checks', 'audit_log', 'system_events')"
                )
            )
        )


def test_upgrade_and_downgrade_keep_the_rows(scratch_url: str) -> None:
    config = alembic_config(scratch_url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "0008")
    engine = create_engine(scratch_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (account_number, first_name, last_name) "
                "VALUES ('ACC-1', 'A', 'B')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO daily_balance_checks (customer_id, check_date, balance, "
                "passes_threshold, check_timestamp) SELECT id, d, 20000, true, now() "
                "FROM customers, generate_series(DATE '2023-06-28', DATE '2023-07-03', "
                "interval '1 day') d"
            )
        )
        conn.execute(
            text(
                "INSERT INTO system_events (event_type, created_at) "
                "VALUES ('old', TIMESTAMP '2022-02-02 10:00')"
            )
        )
    before = _counts(engine)
    assert before["daily_balance_checks"] == 6 and before["audit_log"] == 6
    command.upgrade(config, "0009")
    assert _counts(engine) == before
    assert _relkinds(engine) == {"p"}
    with engine.connect() as conn:
        names = set(conn.scalars(text("SELECT relname FROM pg_class WHERE relkind = 'r'")))
        triggers = set(conn.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
    assert {"daily_balance_checks_p202306", "daily_balance_checks_p202307"} <= names
    assert "system_events_p202202" in names
    assert {"daily_balance_checks_audit_insert", "audit_log_no_update_delete"} <= triggers
    command.downgrade(config, "0008")
    assert _counts(engine) == before
    assert _relkinds(engine) == {"r"}
    with engine.connect() as conn:
        triggers = set(conn.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
        pkey = conn.scalar(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = 'daily_balance_checks_pkey'"
            )
        )
    assert {"daily_balance_checks_audit_insert", "audit_log_no_truncate"} <= triggers
    assert pkey == "PRIMARY KEY (id)"
    command.upgrade(config, "head")
    assert _counts(engine) == before
    engine.dispose()


def test_a_frozen_partition_refuses_new_rows(session: Session) -> None:
    from app.maintenance.repository.partitions import Partition, freeze, is_frozen

    customer = create_customer(session)
    # A month past the checks' one-year horizon (pn_freeze_partition refuses a hot one).
    part = Partition("daily_balance_checks", Month(2025, 9))
    freeze(session, part)
    freeze(session, part)  # idempotent
    session.commit()
    try:
        assert is_frozen(session, part)
        with pytest.raises(DBAPIError, match="daily_balance_checks_p202509_frozen"):
            create_check(session, customer, check_date=date(2025, 9, 4))
            session.flush()
        session.rollback()
    finally:
        session.execute(
            text(
                "ALTER TABLE daily_balance_checks_p202509 DROP CONSTRAINT IF EXISTS "
                "daily_balance_checks_p202509_frozen"
            )
        )
        session.commit()


def test_a_hot_month_cannot_be_frozen_or_retired(session: Session) -> None:
    """Migration 0011: the definer functions refuse a month inside its horizon, measured
    on the database's clock, whatever the caller's settings say."""
    from app.maintenance.repository.partitions import Partition, freeze, retire

    hot = Partition("daily_balance_checks", Month.of(date.today()))
    with pytest.raises(DBAPIError, match="inside its retention horizon"):
        freeze(session, hot)
    session.rollback()
    with pytest.raises(DBAPIError, match="inside its retention horizon"):
        retire(session, hot, rows=0, cold_set="x", manifest_sha256="y")
    session.rollback()
    assert hot.name in {p.name for p in list_partitions(session, hot.table)}
