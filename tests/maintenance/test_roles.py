"""Database roles: the worker cannot write audit rows except through audit_record(),
reporting cannot write, and no role has a bypass of the append-only rule. Role names
carry this session's pid."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from app.maintenance import roles

NAMES = roles.RoleNames.for_prefix(f"pn_t{os.getpid()}")


@pytest.fixture
def applied(db: Engine) -> Iterator[Engine]:
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (entity_type, operation) VALUES ('Test', 'PROCESS');"
                "INSERT INTO customers (account_number, first_name, last_name) "
                "VALUES ('R1', 'A', 'B')"
            )
        )
    from sqlalchemy.orm import Session

    with Session(db) as s, s.begin():
        roles.apply(s, NAMES)
    yield db
    with Session(db) as s, s.begin():
        roles.drop(s, NAMES)


def _as(conn: Connection, role: str, sql: str, maintenance: bool = False) -> None:
    conn.execute(text(f"SET LOCAL ROLE {role}"))
    if maintenance:
        conn.execute(text("SET LOCAL app.audit_maintenance = 'on'"))
    conn.execute(text(sql))


def _refused(engine: Engine, role: str, sql: str, maintenance: bool = False) -> str:
    with engine.connect() as conn, pytest.raises(DBAPIError) as info:
        with conn.begin():
            _as(conn, role, sql, maintenance)
    return str(info.value.orig)


def _allowed(engine: Engine, role: str, sql: str, maintenance: bool = False) -> None:
    with engine.connect() as conn:
        with conn.begin() as tx:
            _as(conn, role, sql, maintenance)
            tx.rollback()


def test_worker_can_write_business_rows_and_append_audit(applied: Engine) -> None:
    _allowed(applied, NAMES.worker, "UPDATE customers SET first_name = 'C'")
    _allowed(applied, NAMES.worker, "SELECT public.audit_record('X', NULL, 'P', 'S', NULL)")
    assert "permission denied" in _refused(
        applied, NAMES.worker, "INSERT INTO audit_log (entity_type, operation) VALUES ('X', 'P')"
    )
    _allowed(applied, NAMES.worker, "SELECT count(*) FROM audit_log")


def test_worker_can_run_the_qualification_statements(applied: Engine) -> None:
    """The run decides into a temporary table: the worker role may, even where the
    database no longer grants TEMPORARY to PUBLIC."""
    from datetime import date

    from sqlalchemy.orm import Session

    from app.qualification import engine as qualification
    from app.qualification.months import Month

    with applied.begin() as conn:
        database = conn.scalar(text("SELECT current_database()"))
        customer = conn.scalar(text("SELECT id FROM customers WHERE account_number = 'R1'"))
        conn.execute(
            text(
                "INSERT INTO daily_balance_checks (customer_id, check_date, balance,"
                " passes_threshold, check_timestamp) VALUES (:c, :d, 20000, true, now())"
            ),
            {"c": customer, "d": date(2026, 2, 1)},
        )
        conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
    try:
        with applied.connect() as conn, conn.begin() as tx:
            conn.execute(text(f"SET LOCAL ROLE {NAMES.worker}"))
            with Session(bind=conn) as session:
                tally = qualification.insert_month(
                    session, Month.parse("2026-02"), __import__("uuid").uuid4()
                )
            assert (tally.rows, tally.qualified) == (1, 0)
            assert tally.reasons["MISSING_DATA"] == 1
            tx.rollback()
    finally:
        with applied.begin() as conn:
            conn.execute(text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))


@pytest.mark.parametrize("maintenance", [False, True])
def test_worker_cannot_change_or_delete_audit_rows(applied: Engine, maintenance: bool) -> None:
    for sql in (
        "UPDATE audit_log SET operation = 'X'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        assert "permission denied" in _refused(applied, NAMES.worker, sql, maintenance)
    assert "permission denied" in _refused(
        applied,
        NAMES.worker,
        "INSERT INTO daily_balance_checks_archive SELECT * FROM daily_balance_checks_archive",
    )


def test_reporting_reads_but_cannot_write(applied: Engine) -> None:
    _allowed(applied, NAMES.reporting, "SELECT count(*) FROM customers, audit_log, job_runs")
    for sql in (
        "INSERT INTO customers (account_number, first_name, last_name) VALUES ('R2', 'a', 'b')",
        "UPDATE customers SET first_name = 'x'",
        "DELETE FROM system_events",
        "INSERT INTO audit_log (entity_type, operation) VALUES ('X', 'P')",
    ):
        assert "permission denied" in _refused(applied, NAMES.reporting, sql)


def test_no_role_has_a_bypass(applied: Engine) -> None:
    # The setting that used to open the append-only trigger opens nothing any more.
    for role in (NAMES.maintenance, NAMES.worker):
        assert "permission denied" in _refused(
            applied, role, "UPDATE audit_log SET details = '{}'", maintenance=True
        )
    # A role that somehow got UPDATE on audit_log still meets the trigger.
    with applied.begin() as conn:
        conn.execute(text(f"GRANT UPDATE ON audit_log TO {NAMES.worker}"))
    assert "append-only" in _refused(
        applied, NAMES.worker, "UPDATE audit_log SET details = '{}'", maintenance=True
    )


def test_apply_is_idempotent_and_cli_prints_sql(applied: Engine) -> None:
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from app.cli.main import cli

    with Session(applied) as s, s.begin():
        roles.apply(s, NAMES)  # again: no error, same result
        assert roles.owner(s)
    result = CliRunner().invoke(cli, ["db", "roles", "--prefix", "pn_x", "--show-sql"])
    assert result.exit_code == 0
    assert "GRANT SELECT ON audit_log, audit_seals TO pn_x_worker;" in result.output
