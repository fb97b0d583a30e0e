"""The database findings of issue 17, each replayed as the role that attempted it.

Every application connection is a service's own login (``db roles --logins``), so what
the audit trail records as ``db_user`` is who really acted.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from alembic import command
from app.maintenance import roles
from tests.security.conftest import NAMES, LoginFactory
from tests.support.factories import create_check, create_customer, create_qualification


def _refused(engine: Engine, *statements: str) -> str:
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(text(sql))
    except DBAPIError as exc:
        return str(exc.orig)
    raise AssertionError(f"accepted: {statements}")


SHADOW = (
    "CREATE TEMP TABLE audit_log (id uuid DEFAULT gen_random_uuid(), entity_type text,"
    " entity_id uuid, operation text, old_values jsonb, new_values jsonb, correlation_id uuid,"
    ' user_id text, service_name text, "timestamp" timestamp, details jsonb, db_user text,'
    " statement_id bigint, row_hash bytea)"
)


def _seed(session: Session) -> None:
    create_check(session, create_customer(session), balance="100.00")
    session.commit()


def test_temp_table_shadowing_still_writes_the_real_audit_log(
    session: Session, login: LoginFactory
) -> None:
    _seed(session)
    worker = login("balances")
    # The issue's `LIKE public.audit_log` now fails first (no SELECT on it): build the
    # same shape by hand, which a worker may.
    assert "permission denied" in _refused(
        worker, "CREATE TEMP TABLE audit_log (LIKE public.audit_log)"
    )
    with worker.begin() as conn:
        conn.execute(text(SHADOW))
        conn.execute(
            text("UPDATE daily_balance_checks SET balance = 99999, passes_threshold = true")
        )
        assert conn.execute(text("SELECT count(*) FROM pg_temp.audit_log")).scalar_one() == 0
    row = session.execute(
        text(
            "SELECT db_user, new_values ->> 'balance' FROM public.audit_log"
            " WHERE entity_type = 'BalanceCheck' AND operation = 'UPDATE'"
        )
    ).one()
    assert tuple(row) == (NAMES.login("balances"), "99999.00")


def test_a_forged_audit_insert_is_refused_and_the_function_records_the_truth(
    session: Session, login: LoginFactory
) -> None:
    worker = login("balances")
    error = _refused(
        worker,
        "INSERT INTO audit_log (entity_type, operation, user_id, timestamp)"
        " VALUES ('Customer', 'GDPR_ERASE', 'ops.alice', '2024-01-01')",
    )
    assert "permission denied for table audit_log" in error
    # Through the one door it has: the row names the real login and the server's time.
    with worker.begin() as conn:
        conn.execute(text("SELECT set_config('app.user_id', 'cli:ops.alice', true)"))
        conn.execute(text("SELECT public.audit_record('Customer', NULL, 'GDPR_ERASE', 'x', NULL)"))
    user, db_user, age = session.execute(
        text(
            "SELECT user_id, db_user, now() AT TIME ZONE 'UTC' - timestamp FROM audit_log"
            " WHERE operation = 'GDPR_ERASE'"
        )
    ).one()
    assert (user, db_user) == (f"cli:{NAMES.login('balances')}", NAMES.login("balances"))
    assert age.total_seconds() < 3600  # the server's clock, not 2024


def test_the_old_setting_bypass_opens_nothing(
    session: Session, login: LoginFactory, superuser: Engine
) -> None:
    _seed(session)
    bypass = "SET LOCAL app.audit_maintenance = 'on'"
    for service in ("maintenance", "operator", "balances"):
        error = _refused(login(service), bypass, "DELETE FROM audit_log")
        assert "permission denied" in error
    # Not even for the database superuser every service used to log in as.
    assert "append-only" in _refused(superuser, bypass, "DELETE FROM audit_log")
    assert "append-only" in _refused(superuser, bypass, "TRUNCATE audit_log_archive")
    assert "append-only" in _refused(superuser, bypass, "UPDATE audit_seals SET seq = seq")


def test_no_service_can_disable_the_audit_triggers(login: LoginFactory) -> None:
    for service in ("balances", "maintenance", "operator", "callbacks"):
        for table in ("audit_log", "daily_balance_checks", "customers"):
            error = _refused(login(service), f"ALTER TABLE {table} DISABLE TRIGGER USER")
            assert "must be owner" in error


def test_deletes_are_refused_or_audited(session: Session, login: LoginFactory) -> None:
    customer = create_customer(session)
    create_check(session, customer, balance="100.00")
    qualification = create_qualification(session, customer)
    session.commit()
    for service in ("balances", "maintenance"):  # checks leave by partition, never by row
        for table in ("daily_balance_checks", "system_events", "audit_log"):
            assert "permission denied" in _refused(login(service), f"DELETE FROM {table}")
    assert "permission denied" in _refused(login("balances"), "DELETE FROM monthly_qualifications")
    with login("maintenance").begin() as conn:  # retention deletes the small tables by month
        conn.execute(text("DELETE FROM monthly_qualifications"))
    row = session.execute(
        text(
            "SELECT db_user, entity_id FROM audit_log"
            " WHERE entity_type = 'Qualification' AND operation = 'DELETE'"
        )
    ).one()
    assert tuple(row) == (NAMES.login("maintenance"), qualification.id)


def test_a_phone_change_is_audited_without_the_phone(session: Session, login: LoginFactory) -> None:
    customer = create_customer(session, phone_number="+972501234567")
    session.commit()
    with login("operator").begin() as conn:
        conn.execute(
            text("UPDATE customers SET phone_number = '+972509999999' WHERE id = :id"),
            {"id": customer.id},
        )
    details, dump = session.execute(
        text(
            "SELECT details, old_values::text || new_values::text FROM audit_log"
            " WHERE entity_type = 'Customer' AND operation = 'UPDATE'"
        )
    ).one()
    assert details == {"changed": ["phone_number"]}
    assert "97250" not in dump and "Dana" not in dump


def test_archives_are_append_only(session: Session, login: LoginFactory, superuser: Engine) -> None:
    _seed(session)
    with superuser.begin() as conn:  # one archived row in each (row triggers need a row)
        conn.execute(
            text(
                "INSERT INTO daily_balance_checks_archive (id, customer_id, check_date, balance,"
                " threshold, passes_threshold, check_timestamp, created_at) SELECT id,"
                " customer_id, check_date, balance, threshold, passes_threshold,"
                " check_timestamp, created_at FROM daily_balance_checks"
            )
        )
        conn.execute(  # as rows archived before issue 21 (nothing archives rows now)
            text(
                "INSERT INTO audit_log_archive (id, entity_type, entity_id, operation,"
                ' new_values, "timestamp", row_hash) SELECT id, entity_type, entity_id,'
                ' operation, new_values, "timestamp", row_hash FROM audit_log'
            )
        )
    for table in ("daily_balance_checks_archive", "audit_log_archive"):
        assert "permission denied" in _refused(login("maintenance"), f"DELETE FROM {table}")
        assert "permission denied" in _refused(login("maintenance"), f"TRUNCATE {table}")
        # Whoever holds the grants meets the trigger: the table owner here.
        assert "append-only" in _refused(superuser, f"DELETE FROM {table}")
        assert "append-only" in _refused(superuser, f"TRUNCATE {table}")
    assert "append-only" in _refused(superuser, "UPDATE audit_log_archive SET user_id = 'x'")


def test_the_compose_flow_runs_migrations_as_the_non_superuser_owner(
    database_url: str, service_roles: None, tmp_path: Path
) -> None:
    """roles (bootstrap) -> migrate as <prefix>_owner -> roles again -> a service works.
    The owner is no superuser; the audit functions end up owned by the NOLOGIN writer."""
    from app.cli.db import alembic_config
    from tests.conftest import drop_database, recreate_database

    (tmp_path / "owner").write_text("pw-owner\n")
    (tmp_path / "balances").write_text("pw-balances\n")
    url = make_url(recreate_database(database_url, f"pn_test_{os.getpid()}_owner"))
    admin = create_engine(url, poolclass=NullPool)
    owner_url = url.set(username=NAMES.owner, password="pw-owner")
    try:
        with Session(admin) as s, s.begin():
            roles.apply(s, NAMES, logins=tmp_path)  # no schema yet: roles and logins only
        config = alembic_config(owner_url.render_as_string(hide_password=False))
        config.attributes["configure_logger"] = False
        command.upgrade(config, "head")
        command.downgrade(config, "base")
        command.upgrade(config, "head")
        with Session(admin) as s, s.begin():
            roles.apply(s, NAMES, logins=tmp_path)
            assert roles.owners_problem(s, NAMES) is None
        with admin.connect() as conn:
            definers = {
                name: owner
                for name, owner in conn.execute(
                    text(
                        "SELECT proname, proowner::regrole::text FROM pg_proc"
                        " WHERE prosecdef AND pronamespace = 'public'::regnamespace"
                    )
                )
            }
            tables = (
                conn.execute(
                    text("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
                )
                .scalars()
                .all()
            )
            superuser = conn.scalar(
                text("SELECT rolsuper FROM pg_roles WHERE rolname = :r"), {"r": NAMES.owner}
            )
        # The audit functions are the writer's; partition maintenance (0011) the owner's.
        partition_functions = {
            "pn_ensure_partitions",
            "pn_freeze_partition",
            "pn_retire_partition",
        }
        assert {n for n, o in definers.items() if o == NAMES.owner} == partition_functions
        assert {o for n, o in definers.items() if n not in partition_functions} == {
            "pn_audit_writer"
        }
        assert tables == [NAMES.owner] and not superuser
        worker = create_engine(
            url.set(username=NAMES.login("balances"), password="pw-balances"), poolclass=NullPool
        )
        with worker.begin() as conn:
            conn.execute(text("SELECT public.audit_record('Probe', NULL, 'PROCESS', 'test', NULL)"))
        worker.dispose()
        with admin.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM audit_seals")) == 1
        _partition_maintenance_is_the_maintenance_roles_alone(url)
    finally:
        admin.dispose()
        drop_database(database_url, url.database or "")
        with Session(create_engine(database_url, poolclass=NullPool)) as s, s.begin():
            s.execute(text(f"REVOKE ALL ON SCHEMA public FROM {NAMES.owner}"))


def _partition_maintenance_is_the_maintenance_roles_alone(url: URL) -> None:
    """Migration 0011: the maintenance login creates and retires partitions through the
    owner's functions (it owns no table), only past the horizon; no other service may."""
    maintenance = create_engine(
        url.set(username=NAMES.login("maintenance"), password="pw-maintenance"),
        poolclass=NullPool,
    )
    ensure = "SELECT public.pn_ensure_partitions('system_events', '2020-01-01', '2020-01-01')"
    try:
        with maintenance.begin() as conn:
            assert conn.scalar(text(ensure)) == ["system_events_p202001"]
            retired = (
                "SELECT public.pn_retire_partition('system_events', '2020-01-01', 0, NULL, NULL)"
            )
            assert conn.scalar(text(retired)) == 0
        current = (
            "SELECT public.pn_retire_partition('daily_balance_checks', "
            "date_trunc('month', LOCALTIMESTAMP)::date, 0, 'x', 'y')"
        )
        assert "retention horizon" in _refused(maintenance, current)
        # A frozen month with rows cannot be passed off as empty (no cold set named).
        full = (
            "SELECT public.pn_ensure_partitions('daily_balance_checks', '2020-01-01', '2020-01-01')"
        )
        with maintenance.begin() as conn:
            conn.execute(text(full))
        with create_engine(url, poolclass=NullPool).begin() as conn:  # the administrator
            conn.execute(
                text(
                    "INSERT INTO customers (account_number, first_name, last_name, "
                    "phone_number, account_type) VALUES ('Z1', 'A', 'B', '+972501234567', "
                    "'PREMIUM') RETURNING id"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO daily_balance_checks (customer_id, check_date, balance, "
                    "passes_threshold, check_timestamp) SELECT id, '2020-01-05', 1, false, "
                    "now() FROM customers WHERE account_number = 'Z1'"
                )
            )
        freeze = "SELECT public.pn_freeze_partition('daily_balance_checks', '2020-01-01')"
        lie = (
            "SELECT public.pn_retire_partition('daily_balance_checks', '2020-01-01', 0, NULL, NULL)"
        )
        assert "holds 1 rows" in _refused(maintenance, freeze, lie)
        assert "not a partitioned table" in _refused(
            maintenance,
            "SELECT public.pn_ensure_partitions('customers', '2020-01-01', '2020-01-01')",
        )
        assert "must be owner" in _refused(maintenance, "DROP TABLE system_events")
    finally:
        maintenance.dispose()
    balances = create_engine(
        url.set(username=NAMES.login("balances"), password="pw-balances"), poolclass=NullPool
    )
    try:
        assert "permission denied" in _refused(balances, ensure)
    finally:
        balances.dispose()
