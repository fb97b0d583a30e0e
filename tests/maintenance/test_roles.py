"""Database roles: one group per service with only its grants; no group owns a table,
writes audit rows directly or deletes outside maintenance. Role names carry this
session's pid (roles are cluster wide)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.maintenance import roles

NAMES = roles.RoleNames.for_prefix(f"pn_t{os.getpid()}")
WORKERS = ("balances", "sms", "delivery", "callbacks", "scheduler")


@pytest.fixture
def applied(db: Engine, tmp_path: Path) -> Iterator[Engine]:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (account_number, first_name, last_name) "
                "VALUES ('R1', 'A', 'B')"
            )
        )
    (tmp_path / "balances").write_text("s3cret-balances\n")
    with Session(db) as s, s.begin():
        roles.apply(s, NAMES, logins=tmp_path)
    yield db
    with Session(db) as s, s.begin():
        database = s.scalar(text("SELECT current_database()"))
        s.execute(text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))
        roles.drop(s, NAMES)


def _as(conn: Connection, role: str, sql: str) -> None:
    conn.execute(text(f"SET LOCAL ROLE {role}"))
    conn.execute(text(sql))


def _refused(engine: Engine, service: str, sql: str) -> str:
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        with conn.begin():
            _as(conn, NAMES.group(service), sql)
    return str(info.value.orig)


def _allowed(engine: Engine, service: str, sql: str) -> None:
    with engine.connect() as conn:
        with conn.begin() as tx:
            _as(conn, NAMES.group(service), sql)
            tx.rollback()


def test_each_service_writes_what_its_code_writes(applied: Engine) -> None:
    _allowed(applied, "balances", "UPDATE customers SET phone_status = 'MOBILE'")
    _allowed(applied, "balances", "SELECT public.audit_record('X', NULL, 'P', 'S', NULL)")
    _allowed(applied, "sms", "UPDATE notifications SET retry_count = 1")
    _allowed(applied, "delivery", "UPDATE delivery_status SET attempts = 2")
    _allowed(applied, "callbacks", "SELECT count(*) FROM callback_receipts")
    _allowed(applied, "maintenance", "DELETE FROM notifications")
    _allowed(applied, "operator", "UPDATE customers SET first_name = 'C'")


@pytest.mark.parametrize("service", WORKERS)
def test_nothing_but_maintenance_deletes(applied: Engine, service: str) -> None:
    for table in ("customers", "daily_balance_checks", "notifications", "delivery_status"):
        assert "permission denied" in _refused(applied, service, f"DELETE FROM {table}")


def test_maintenance_deletes_only_the_small_tables_retention_empties(applied: Engine) -> None:
    # Checks, audit rows and system events leave by partition (migration 0011's definer
    # functions); the row-archival functions of 0010 are gone (migration 0012).
    for table in ("daily_balance_checks", "system_events", "customers", "job_runs"):
        assert "permission denied" in _refused(applied, "maintenance", f"DELETE FROM {table}")
    for table in ("daily_balance_checks_archive", "notifications_archive"):
        sql = f"INSERT INTO {table} SELECT * FROM {table}"
        assert "permission denied" in _refused(applied, "maintenance", sql)
    for function in ("audit_archive", "audit_retire"):
        error = _refused(applied, "maintenance", f"SELECT public.{function}('{{}}'::uuid[])")
        assert "does not exist" in error
    for table in ("monthly_qualifications", "notifications", "delivery_status"):
        _allowed(applied, "maintenance", f"DELETE FROM {table}")


@pytest.mark.parametrize("service", [*WORKERS, "maintenance", "operator", "reporting"])
def test_no_service_writes_audit_tables_directly(applied: Engine, service: str) -> None:
    for sql in (
        "INSERT INTO audit_log (entity_type, operation) VALUES ('X', 'P')",
        "UPDATE audit_log SET operation = 'X'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "INSERT INTO audit_seals SELECT * FROM audit_seals",
        "DELETE FROM audit_log_archive",
        "ALTER TABLE audit_log DISABLE TRIGGER USER",
    ):
        error = _refused(applied, service, sql)
        assert "permission denied" in error or "must be owner" in error, (sql, error)


def test_the_scheduler_and_the_exporter_read_no_business_table(applied: Engine) -> None:
    for service in ("scheduler", "exporter"):
        assert "permission denied" in _refused(applied, service, "SELECT * FROM customers")
    _allowed(applied, "exporter", "SELECT count(*) FROM pg_stat_activity")


def test_reporting_reads_but_cannot_write(applied: Engine) -> None:
    _allowed(applied, "reporting", "SELECT count(*) FROM customers, audit_log, job_runs")
    for sql in (
        "INSERT INTO customers (account_number, first_name, last_name) VALUES ('R2', 'a', 'b')",
        "UPDATE customers SET first_name = 'x'",
        "DELETE FROM system_events",
    ):
        assert "permission denied" in _refused(applied, "reporting", sql)


def test_temporary_tables_only_where_the_code_stages(applied: Engine) -> None:
    # A fresh connection each: a backend checks TEMPORARY once, at its first temp table.
    fresh = create_engine(applied.url, poolclass=NullPool)
    try:
        _allowed(fresh, "balances", "CREATE TEMP TABLE t (x int)")
        assert "permission denied" in _refused(fresh, "sms", "CREATE TEMP TABLE t (x int)")
    finally:
        fresh.dispose()


def test_the_balances_pool_runs_the_qualification_as_its_login(
    applied: Engine, database_url: str
) -> None:
    """A real code path, logged in as the pool's own login (not SET ROLE)."""
    import uuid

    from app.qualification import engine as qualification
    from app.qualification.months import Month

    with applied.begin() as conn:
        customer = conn.scalar(text("SELECT id FROM customers WHERE account_number = 'R1'"))
        conn.execute(
            text(
                "INSERT INTO daily_balance_checks (customer_id, check_date, balance,"
                " passes_threshold, check_timestamp) VALUES (:c, :d, 20000, true, now())"
            ),
            {"c": customer, "d": date(2026, 2, 1)},
        )
    url = make_url(database_url).set(username=NAMES.login("balances"), password="s3cret-balances")
    login = create_engine(url, poolclass=NullPool)
    try:
        with Session(login) as session, session.begin():
            tally = qualification.insert_month(session, Month.parse("2026-02"), uuid.uuid4())
            assert (tally.rows, tally.qualified) == (1, 0)
    finally:
        login.dispose()
    with applied.connect() as conn:
        who = conn.scalar(text("SELECT db_user FROM audit_log WHERE entity_type = 'Qualification'"))
    assert who == NAMES.login("balances")


def test_apply_is_idempotent_and_cli_prints_sql(applied: Engine) -> None:
    from typer.testing import CliRunner

    from app.cli.main import cli

    with Session(applied) as s, s.begin():
        roles.apply(s, NAMES)  # again: no error, same result
        assert roles.owner(s)
        assert roles.owners_problem(s, NAMES) is None
    result = CliRunner().invoke(cli, ["db", "roles", "--prefix", "pn_x", "--show-sql"])
    assert result.exit_code == 0
    assert "GRANT DELETE ON public.monthly_qualifications" in result.output
    assert "TO pn_x_maintenance;" in result.output
    assert "GRANT pg_monitor TO pn_x_exporter;" in result.output


def test_logins_keep_their_statement_values_out_of_the_server_log(applied: Engine) -> None:
    # db roles --logins, run by a superuser, gives every login it makes the quiet logging
    # settings of app/db/statement_logging.py (psycopg2 sends values as literals).
    with applied.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT unnest(s.setconfig) FROM pg_db_role_setting s "
                "JOIN pg_roles r ON r.oid = s.setrole WHERE r.rolname = :login"
            ),
            {"login": NAMES.login("balances")},
        ).scalars()
        settings = dict(row.split("=", 1) for row in rows)
    assert settings["log_statement"] == "none"
    assert settings["log_min_duration_statement"] == "-1"
    assert settings["log_min_error_statement"] == "panic"
