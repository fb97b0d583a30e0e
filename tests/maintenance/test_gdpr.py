"""GDPR export and erasure against the real database (audit triggers included)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.maintenance import gdpr
from app.models import AuditLog
from tests.support.db import all_text
from tests.support.factories import (
    create_check,
    create_customer,
    create_delivery_status,
    create_notification,
    create_qualification,
)

PHONE = "+972541234567"
EMAIL = "yael.zilberstein@example.org"


def _customer_with_history(session: Session) -> Any:
    """A customer with hot and archived rows in every table, plus a neighbour."""
    customer = create_customer(
        session,
        first_name="Yael",
        last_name="Zilberstein",
        email=EMAIL,
        phone_number=PHONE,
    )
    checks = [create_check(session, customer, check_date=f"2026-10-0{d}") for d in (1, 2)]
    qual = create_qualification(session, customer)
    note = create_notification(
        session, qual, sms_content="Shalom Yael Zilberstein, you are a premium customer"
    )
    status = create_delivery_status(session, note, status="Delivered", final_status=True)
    # Archived history (as retention leaves it) and an audit entry that slipped PII in.
    old_qual, old_note = uuid.uuid4(), uuid.uuid4()
    session.execute(
        text(
            "INSERT INTO monthly_qualifications_archive (id, customer_id, qualification_month,"
            " qualified, calculated_at, created_at)"
            " VALUES (:q, :c, '2024-01-01', true, now(), now());"
            "INSERT INTO notifications_archive (id, customer_id, qualification_id, phone_number,"
            " sms_content, created_at) VALUES (:n, :c, :q, :phone, 'Shalom Yael, old', now());"
            "INSERT INTO delivery_status_archive (id, notification_id, status, created_at,"
            " updated_at) VALUES (gen_random_uuid(), :n, 'Delivered', now(), now());"
            "INSERT INTO daily_balance_checks_archive (id, customer_id, check_date, balance,"
            " threshold, passes_threshold, check_timestamp, created_at)"
            " VALUES (gen_random_uuid(), :c, '2024-01-05', 20000, 15000, true, now(), now());"
            "INSERT INTO audit_log_archive (id, entity_type, entity_id, operation, new_values,"
            " timestamp) VALUES (gen_random_uuid(), 'Notification', :n, 'INSERT',"
            " jsonb_build_object('note', 'called Yael Zilberstein at ' || :phone), now())"
        ),
        {"q": old_qual, "n": old_note, "c": customer.id, "phone": PHONE},
    )
    session.add(
        AuditLog(
            entity_type="Customer",
            entity_id=customer.id,
            operation="UPDATE",
            new_values={"email": EMAIL, "nested": {"who": "Yael Zilberstein"}},
        )
    )
    session.execute(  # a STOP by reply, then a START: the opt-out history is theirs too
        text(
            "INSERT INTO customer_opt_outs (customer_id, opted_out, source, keyword, recorded_at)"
            " VALUES (:c, true, 'inbound_keyword', 'STOP', now() - interval '1 day'),"
            " (:c, false, 'inbound_keyword', 'START', now())"
        ),
        {"c": customer.id},
    )
    other = create_customer(session, first_name="Noa", last_name="Barak")
    create_check(session, other)
    session.commit()
    return customer, checks, qual, note, status


def test_export_contains_every_row_about_the_customer(session: Session) -> None:
    customer, checks, qual, note, status = _customer_with_history(session)

    doc = gdpr.export(session, customer.account_number, operator="test")
    session.commit()

    tables = doc["tables"]
    assert [r["id"] for r in tables["customers"]] == [customer.id]
    assert {r["id"] for r in tables["daily_balance_checks"]} == {c.id for c in checks}
    assert [r["id"] for r in tables["monthly_qualifications"]] == [qual.id]
    assert [r["id"] for r in tables["notifications"]] == [note.id]
    assert [r["id"] for r in tables["delivery_status"]] == [status.id]
    assert [r["keyword"] for r in tables["customer_opt_outs"]] == ["STOP", "START"]
    for archived in (
        "daily_balance_checks_archive",
        "monthly_qualifications_archive",
        "notifications_archive",
        "delivery_status_archive",
        "audit_log_archive",
    ):
        assert len(tables[archived]) == 1, archived
    # Every audit row the database holds about their entities (trigger rows and ours).
    ids = {customer.id, qual.id, note.id, *(c.id for c in checks)}
    expected_audit = set(  # all but the export's own row, written after it read
        session.scalars(
            text(
                "SELECT id FROM audit_log WHERE entity_id = ANY(:ids) "
                "AND operation <> 'GDPR_EXPORT'"
            ),
            {"ids": list(ids)},
        )
    )
    exported_audit = {r["id"] for r in tables["audit_log"]}
    assert expected_audit - exported_audit == set()
    assert len(expected_audit) >= 5  # 2 checks, 1 qualification, 1 notification, 1 manual
    # Nothing about the neighbour.
    assert "Noa" not in json.dumps(doc, default=str)
    # The access itself is audited, without personal data.
    row = session.scalars(
        text("SELECT details::text FROM audit_log WHERE operation = 'GDPR_EXPORT'")
    ).one()
    assert PHONE not in row and "Yael" not in row


def test_anonymise_leaves_no_trace_of_personal_data(session: Session) -> None:
    customer, *_ = _customer_with_history(session)
    before = all_text(session)
    assert PHONE in before and EMAIL in before and "Zilberstein" in before  # the test sees them

    counts = gdpr.erase(session, customer.account_number, anonymise=True, operator="test")
    session.commit()

    after = all_text(session)
    for value in ("Yael", "Zilberstein", EMAIL, PHONE, "0541234567", "054-123-4567"):
        assert value not in after, value
    assert counts["audit_log"] >= 2  # the hot and the archived audit rows that held PII
    row = session.execute(
        text("SELECT is_active, anonymised_at, account_number FROM customers WHERE id = :c"),
        {"c": customer.id},
    ).one()
    assert row.is_active is False and row.anonymised_at is not None
    # Compliance rows are kept, only scrubbed.
    assert session.scalar(text("SELECT count(*) FROM notifications")) == 1
    assert session.scalar(text("SELECT count(*) FROM daily_balance_checks")) == 3
    # The neighbour is untouched.
    assert "Noa" in after and "Barak" in after
    # Idempotent: a second erase finds nothing more to change.
    again = gdpr.erase(session, customer.account_number, anonymise=True, operator="test")
    session.commit()
    assert again == {"customers": 0, "notifications": 0, "notifications_archive": 0, "audit_log": 0}


def test_default_erase_only_deactivates(session: Session) -> None:
    customer, *_ = _customer_with_history(session)
    gdpr.erase(session, customer.account_number, operator="test")
    session.commit()
    row = session.execute(
        text(
            "SELECT is_active, first_name, phone_number, anonymised_at FROM customers WHERE id = :c"
        ),
        {"c": customer.id},
    ).one()
    assert (row.is_active, row.first_name, row.phone_number, row.anonymised_at) == (
        False,
        "Yael",
        PHONE,
        None,
    )
    audit = session.execute(
        text("SELECT user_id, details FROM audit_log WHERE operation = 'GDPR_ERASE'")
    ).one()
    assert audit.user_id == "test" and audit.details["anonymise"] is False


@pytest.fixture
def backup_env(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.support.backup import isolated_backup_env

    yield from isolated_backup_env(tmp_path, monkeypatch)


def test_cli_export_and_unknown_account(
    db: Engine, session: Session, tmp_path: Any, backup_env: Any
) -> None:
    from app.maintenance import encryption

    customer, *_ = _customer_with_history(session)
    out = tmp_path / "export.json.age"
    out.write_text("an older export\n")
    out.chmod(0o644)  # an existing file's mode does not carry over
    runner = CliRunner()
    result = runner.invoke(
        cli, ["gdpr", "export", "--account", customer.account_number, "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"age-encryption.org/v1")  # encrypted at rest
    assert customer.account_number.encode() not in out.read_bytes()
    identity = tmp_path / "keys" / "identity.txt"
    doc = json.loads(encryption.decrypt(out.read_bytes(), identity))
    assert doc["counts"]["notifications"] == 1
    assert oct(out.stat().st_mode & 0o777) == "0o600"

    result = runner.invoke(cli, ["gdpr", "erase", "--account", "NO-SUCH"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "NO-SUCH" in str(result.exception)
