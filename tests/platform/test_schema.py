"""The migrated schema against the seed (pg_catalog), and the docs/design.md decisions."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from tests.support.factories import (
    create_check,
    create_customer,
    create_notification,
    create_qualification,
)

TS = "timestamp without time zone"

# Seed section 3: table -> {column: (data_type, length/precision)}.
SEED_COLUMNS: dict[str, dict[str, tuple[str, object]]] = {
    "customers": {
        "id": ("uuid", None),
        "account_number": ("character varying", 50),
        "first_name": ("character varying", 100),
        "last_name": ("character varying", 100),
        "email": ("character varying", 255),
        "phone_number": ("character varying", 20),
        "account_type": ("character varying", 50),
        "created_at": (TS, None),
        "updated_at": (TS, None),
        "is_active": ("boolean", None),
        "last_verified": (TS, None),
    },
    "daily_balance_checks": {
        "id": ("uuid", None),
        "customer_id": ("uuid", None),
        "check_date": ("date", None),
        "balance": ("numeric", (18, 2)),
        "threshold": ("numeric", (18, 2)),
        "passes_threshold": ("boolean", None),
        "check_timestamp": (TS, None),
        "data_quality_flag": ("character varying", 100),
        "correlation_id": ("uuid", None),
        "created_at": (TS, None),
    },
    "monthly_qualifications": {
        "id": ("uuid", None),
        "customer_id": ("uuid", None),
        "qualification_month": ("date", None),
        "qualified": ("boolean", None),
        "qualifying_days": ("integer", None),
        "total_days_in_month": ("integer", None),
        "disqualification_reason": ("character varying", 255),
        "phone_number_validated": ("boolean", None),
        "calculated_at": (TS, None),
        "created_at": (TS, None),
    },
    "notifications": {
        "id": ("uuid", None),
        "customer_id": ("uuid", None),
        "qualification_id": ("uuid", None),
        "phone_number": ("character varying", 20),
        "sms_content": ("text", None),
        "character_count": ("integer", None),
        "carrier_reference_id": ("character varying", 255),
        "submission_timestamp": (TS, None),
        "submission_status": ("character varying", 50),
        "batch_id": ("uuid", None),
        "retry_count": ("integer", None),
        "created_at": (TS, None),
        "updated_at": (TS, None),
        "segment_count": ("integer", None),  # the addition
    },
    "delivery_status": {
        "id": ("uuid", None),
        "notification_id": ("uuid", None),
        "status": ("character varying", 50),
        "status_code": ("character varying", 50),
        "failure_reason": ("character varying", 255),
        "delivery_timestamp": (TS, None),
        "last_check_timestamp": (TS, None),
        "attempts": ("integer", None),
        "final_status": ("boolean", None),
        "created_at": (TS, None),
        "updated_at": (TS, None),
    },
    "audit_log": {
        "id": ("uuid", None),
        "entity_type": ("character varying", 100),
        "entity_id": ("uuid", None),
        "operation": ("character varying", 50),
        "old_values": ("jsonb", None),
        "new_values": ("jsonb", None),
        "correlation_id": ("uuid", None),
        "user_id": ("character varying", 100),
        "service_name": ("character varying", 100),
        "timestamp": (TS, None),
        "details": ("jsonb", None),
    },
    "system_events": {
        "id": ("uuid", None),
        "event_type": ("character varying", 100),
        "severity": ("character varying", 50),
        "service_name": ("character varying", 100),
        "description": ("text", None),
        "event_data": ("jsonb", None),
        "correlation_id": ("uuid", None),
        "created_at": (TS, None),
    },
}

# Seed NOT NULL columns and defaults (section 3).
SEED_NOT_NULL = {
    "customers": {"id", "account_number", "first_name", "last_name", "created_at", "updated_at"},
    "daily_balance_checks": {
        "id",
        "customer_id",
        "check_date",
        "balance",
        "threshold",
        "passes_threshold",
        "check_timestamp",
        "created_at",
    },
    "monthly_qualifications": {
        "id",
        "customer_id",
        "qualification_month",
        "qualified",
        "calculated_at",
        "created_at",
    },
    "notifications": {
        "id",
        "customer_id",
        "qualification_id",
        "phone_number",
        "sms_content",
        "created_at",
    },
    "delivery_status": {"id", "notification_id", "status", "created_at", "updated_at"},
    "audit_log": {"id", "entity_type", "operation", "timestamp"},
    "system_events": {"id", "event_type", "created_at"},
}
SEED_DEFAULTS = {
    ("customers", "id"): "gen_random_uuid()",
    ("customers", "is_active"): "true",
    ("customers", "created_at"): "CURRENT_TIMESTAMP",
    ("daily_balance_checks", "threshold"): "15000",
    ("monthly_qualifications", "phone_number_validated"): "false",
    ("notifications", "retry_count"): "0",
    ("delivery_status", "attempts"): "1",
    ("delivery_status", "final_status"): "false",
    ("audit_log", "timestamp"): "CURRENT_TIMESTAMP",
}

# Seed sections 3 and 5: index name -> (table, fragment of pg_indexes.indexdef).
SEED_INDEXES = {
    "idx_customers_active": ("customers", "(is_active)"),
    "idx_customers_phone": ("customers", "(phone_number)"),
    "idx_customers_account": ("customers", "(account_number)"),
    "idx_daily_checks_customer_date": ("daily_balance_checks", "(customer_id, check_date)"),
    "idx_daily_checks_date_status": ("daily_balance_checks", "(check_date, passes_threshold)"),
    "idx_daily_checks_customer_month": (
        "daily_balance_checks",
        "(customer_id, EXTRACT(year FROM check_date), EXTRACT(month FROM check_date))",
    ),
    "idx_monthly_qual_customer_month": (
        "monthly_qualifications",
        "(customer_id, qualification_month)",
    ),
    "idx_monthly_qual_month_status": ("monthly_qualifications", "(qualification_month, qualified)"),
    "idx_monthly_qual_qualified": ("monthly_qualifications", "(qualified, qualification_month)"),
    "idx_notifications_customer": ("notifications", "(customer_id)"),
    "idx_notifications_carrier_ref": ("notifications", "(carrier_reference_id)"),
    "idx_notifications_submission": ("notifications", "(submission_timestamp)"),
    "idx_notifications_batch": ("notifications", "(batch_id)"),
    "idx_delivery_status_notification": ("delivery_status", "(notification_id)"),
    "idx_delivery_status_status": ("delivery_status", "(status, final_status)"),
    "idx_delivery_status_timestamp": ("delivery_status", "(last_check_timestamp)"),
    "idx_delivery_undelivered": (
        "delivery_status",
        "(status) WHERE ((status)::text <> 'Delivered'::text)",
    ),
    "idx_audit_entity": ("audit_log", "(entity_type, entity_id)"),
    "idx_audit_operation": ("audit_log", '(operation, "timestamp")'),
    "idx_audit_timestamp": ("audit_log", '("timestamp" DESC)'),
    "idx_audit_correlation": ("audit_log", "(correlation_id)"),
    "idx_system_events_type": ("system_events", "(event_type)"),
    "idx_system_events_severity": ("system_events", "(severity)"),
    "idx_system_events_service": ("system_events", "(service_name)"),
    "idx_system_events_timestamp": ("system_events", "(created_at DESC)"),
}


def test_every_seed_column_exists_with_its_type(db: Engine) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT table_name, column_name, data_type, character_maximum_length,"
                " numeric_precision, numeric_scale, is_nullable, column_default"
                " FROM information_schema.columns WHERE table_schema = 'public'"
            )
        ).all()
    actual = {(r.table_name, r.column_name): r for r in rows}
    for table, columns in SEED_COLUMNS.items():
        for column, (data_type, size) in columns.items():
            row = actual.get((table, column))
            assert row is not None, f"{table}.{column} is missing"
            assert row.data_type == data_type, f"{table}.{column}: {row.data_type}"
            if isinstance(size, int):
                assert row.character_maximum_length == size, f"{table}.{column} length"
            elif isinstance(size, tuple):
                assert (row.numeric_precision, row.numeric_scale) == size, f"{table}.{column}"
    for table, not_null in SEED_NOT_NULL.items():
        for column in SEED_COLUMNS[table]:
            expected = "NO" if column in not_null else "YES"
            assert actual[(table, column)].is_nullable == expected, f"{table}.{column} nullability"
    for (table, column), default in SEED_DEFAULTS.items():
        assert default in (actual[(table, column)].column_default or ""), f"{table}.{column}"


def test_every_seed_index_exists_under_its_seed_name(db: Engine) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            )
        ).all()
    indexes = {r.indexname: r for r in rows}
    for name, (table, fragment) in SEED_INDEXES.items():
        assert name in indexes, f"index {name} is missing"
        assert indexes[name].tablename == table
        assert indexes[name].indexdef.endswith(fragment), indexes[name].indexdef


def test_constraints_of_seed_and_design(db: Engine) -> None:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT conname, conrelid::regclass::text AS tbl, contype,"
                " pg_get_constraintdef(oid) AS definition FROM pg_constraint"
                " WHERE connamespace = 'public'::regnamespace"
            )
        ).all()
    constraints = {r.conname: r for r in rows}
    assert constraints["chk_qualified_has_phone"].tbl == "monthly_qualifications"
    assert constraints["chk_submitted_has_reference"].tbl == "notifications"
    assert "chk_balance_positive" not in constraints  # decision 5
    uniques = {(r.tbl, r.definition) for r in rows if r.contype == "u"}
    assert ("daily_balance_checks", "UNIQUE (customer_id, check_date)") in uniques  # decision 3
    assert ("monthly_qualifications", "UNIQUE (customer_id, qualification_month)") in uniques
    assert ("notifications", "UNIQUE (qualification_id)") in uniques  # decision 2
    assert ("customers", "UNIQUE (account_number)") in uniques
    fks = {r.tbl: r.definition for r in rows if r.contype == "f" and r.tbl == "delivery_status"}
    assert "ON DELETE CASCADE" in fks["delivery_status"]


def test_archive_tables_mirror_the_hot_tables(db: Engine) -> None:
    with db.connect() as conn:
        cols = conn.execute(
            text(
                "SELECT table_name, array_agg(column_name::text ORDER BY column_name) AS cols"
                " FROM information_schema.columns WHERE table_schema = 'public'"
                " GROUP BY table_name"
            )
        ).all()
    by_table = {r.table_name: set(r.cols) for r in cols}
    for hot in (
        "daily_balance_checks",
        "monthly_qualifications",
        "notifications",
        "delivery_status",
        "audit_log",
    ):
        assert by_table[f"{hot}_archive"] == by_table[hot] | {"archived_at"}


def _audit_rows(session: Session, entity_type: str) -> list[object]:
    return list(
        session.execute(
            text(
                "SELECT entity_id, operation, old_values, new_values, service_name, correlation_id"
                " FROM audit_log WHERE entity_type = :t ORDER BY timestamp"
            ),
            {"t": entity_type},
        ).all()
    )


def test_audit_trigger_writes_one_row_per_check_for_a_multi_row_insert(session: Session) -> None:
    customers = [create_customer(session) for _ in range(3)]
    session.execute(
        text(
            "INSERT INTO daily_balance_checks (customer_id, check_date, balance, passes_threshold,"
            " check_timestamp, correlation_id)"
            " SELECT c, CAST(d AS date), 15000.00, true, now(),"
            " '00000000-0000-0000-0000-00000000abcd'"
            " FROM unnest(CAST(:ids AS uuid[])) AS c,"
            " generate_series(DATE '2026-10-01', DATE '2026-10-05', '1 day') AS d"
        ),
        {"ids": [str(c.id) for c in customers]},
    )
    session.commit()
    rows = _audit_rows(session, "BalanceCheck")
    checks = session.execute(text("SELECT id FROM daily_balance_checks")).scalars().all()
    assert len(checks) == 15
    assert len(rows) == 15
    assert {r.entity_id for r in rows} == set(checks)
    assert {r.operation for r in rows} == {"INSERT"}
    assert {r.service_name for r in rows} == {"BalanceMonitor"}
    assert {str(r.correlation_id) for r in rows} == {"00000000-0000-0000-0000-00000000abcd"}
    assert rows[0].new_values["balance"] == 15000.00
    assert rows[0].new_values["check_date"].startswith("2026-10-0")


def test_audit_trigger_writes_one_row_per_updated_check(session: Session) -> None:
    customer = create_customer(session)
    for day in (1, 2, 3):
        create_check(session, customer, check_date=date(2026, 10, day), balance="100.00")
    session.commit()
    session.execute(
        text(
            "UPDATE daily_balance_checks SET balance = 20000, passes_threshold = true"
            " WHERE check_date <= '2026-10-02'"
        )
    )
    session.commit()
    updates = [r for r in _audit_rows(session, "BalanceCheck") if r.operation == "UPDATE"]
    assert len(updates) == 2
    assert all(r.old_values["balance"] == 100.00 for r in updates)
    assert all(r.new_values["balance"] == 20000 for r in updates)


def test_bulk_tables_get_time_ordered_ids_and_customers_random_ones(session: Session) -> None:
    """Migration 0002: UUIDv7 ids (version 7, RFC 9562 variant, in creation order) for
    the bulk-written tables and their audit rows; customers keep random (v4) ids."""
    customers = [create_customer(session) for _ in range(3)]
    checks = []
    for day in range(1, 4):
        checks.append(create_check(session, customers[0], check_date=date(2026, 10, day)))
        session.flush()
        session.execute(text("SELECT pg_sleep(0.002)"))  # the next millisecond
    session.commit()
    assert {c.id.version for c in customers} == {4}
    assert [c.id.version for c in checks] == [7, 7, 7]
    assert all(c.id.variant == uuid.RFC_4122 for c in checks)
    assert [c.id for c in checks] == sorted(c.id for c in checks)
    audited = session.execute(text("SELECT id FROM audit_log")).scalars().all()
    assert audited and {a.version for a in audited} == {7}
    stamp_ms = session.execute(
        text("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint")
    ).scalar_one()
    assert 0 <= stamp_ms - (checks[-1].id.int >> 80) < 60_000  # leading 48 bits: Unix ms


def test_audit_log_is_append_only(session: Session) -> None:
    customer = create_customer(session)
    create_check(session, customer)
    session.commit()
    for statement in (
        "UPDATE audit_log SET operation = 'X'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    counted = "SELECT count(*) FROM audit_log WHERE entity_type = 'BalanceCheck'"
    assert session.execute(text(counted)).scalar_one() == 1


def test_a_duplicate_customer_day_is_rejected(session: Session) -> None:
    customer = create_customer(session)
    create_check(session, customer, check_date=date(2026, 10, 7))
    session.commit()
    with pytest.raises(IntegrityError, match="daily_balance_checks_customer_id_check_date_key"):
        create_check(session, customer, check_date=date(2026, 10, 7))
    session.rollback()


def test_negative_balances_are_stored(session: Session) -> None:
    customer = create_customer(session)
    check = create_check(session, customer, balance="-250.75", data_quality_flag="NEGATIVE_BALANCE")
    session.commit()
    assert check.passes_threshold is False
    stored = session.execute(text("SELECT balance FROM daily_balance_checks")).scalar_one()
    assert str(stored) == "-250.75"


def test_chk_qualified_has_phone(session: Session) -> None:
    customer = create_customer(session)
    create_qualification(
        session,
        customer,
        qualified=False,
        phone_number_validated=False,
        qualification_month=date(2026, 9, 1),
    )
    session.commit()
    with pytest.raises(IntegrityError, match="chk_qualified_has_phone"):
        create_qualification(session, customer, qualified=True, phone_number_validated=False)
    session.rollback()


def test_chk_submitted_has_reference(session: Session) -> None:
    customer = create_customer(session)
    qualification = create_qualification(session, customer)
    notification = create_notification(session, qualification)
    session.commit()
    with pytest.raises(IntegrityError, match="chk_submitted_has_reference"):
        session.execute(
            text("UPDATE notifications SET submission_status = 'Submitted' WHERE id = :id"),
            {"id": notification.id},
        )
    session.rollback()
    session.execute(
        text(
            "UPDATE notifications SET submission_status = 'Submitted', carrier_reference_id = 'SM1'"
            " WHERE id = :id"
        ),
        {"id": notification.id},
    )
    session.commit()


def test_notification_audit_keeps_personal_data_out(session: Session) -> None:
    customer = create_customer(session, phone_number="+972521112233")
    qualification = create_qualification(session, customer)
    create_notification(session, qualification, sms_content="Shalom Dana")
    session.commit()
    rows = _audit_rows(session, "Notification")
    assert len(rows) == 1
    assert "phone_number" not in rows[0].new_values
    assert "sms_content" not in rows[0].new_values
    assert rows[0].new_values["submission_status"] == "Queued"
