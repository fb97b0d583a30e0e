"""Preparing a month's outbox: one row per qualified customer, skips with reasons, audit."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.db.session import session_scope
from app.models import AuditLog, Customer, JobRun
from app.months import Month
from app.notifications.outbox import OutboxError, prepare_month
from app.notifications.segments import analyze
from tests.support.carrier import MONTH, outbox, qualified_customers
from tests.support.factories import create_customer, create_qualification


def test_prepare_inserts_one_queued_row_per_qualified_customer(
    session: Session, sms_env: object
) -> None:
    qualified_customers(session, 5)
    other = create_customer(session)
    create_qualification(
        session,
        other,
        qualification_month=MONTH,
        qualified=False,
        phone_number_validated=False,
        disqualification_reason="BELOW_THRESHOLD",
    )
    session.commit()

    with session_scope() as s:
        result = prepare_month(s, Month.of(MONTH), triggered_by="test")
    rows = outbox(session)
    assert result.queued == 5 and len(rows) == 5
    assert {r.submission_status for r in rows} == {"Queued"}
    for row in rows:
        info = analyze(row.sms_content)
        assert (row.character_count, row.segment_count) == (info.characters, info.segments)
        assert row.batch_id is not None and row.correlation_id == result.correlation_id
        assert "Dana Levi" in row.sms_content and "October" in row.sms_content

    # Re-running adds nothing.
    with session_scope() as s:
        again = prepare_month(s, Month.of(MONTH), triggered_by="test")
    assert again.queued == 0 and again.already_queued == 5 and len(outbox(session)) == 5


def test_batches_follow_batch_size(
    session: Session, sms_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("SMS_BATCH_SIZE", "2")
    get_settings.cache_clear()
    qualified_customers(session, 5)
    with session_scope() as s:
        result = prepare_month(s, Month.of(MONTH))
    assert len(result.batches) == 3
    sizes = sorted(sum(1 for r in outbox(session) if r.batch_id == b) for b in result.batches)
    assert sizes == [1, 2, 2]


def test_changed_customers_are_skipped_with_a_reason(session: Session, sms_env: object) -> None:
    qualified_customers(session, 1)
    inactive = create_customer(session, is_active=False)
    bad_phone = create_customer(session, phone_number="+97231234567")  # a landline now
    # One non-GSM letter makes it UCS-2: 100 letters then need 4 segments (max 3).
    long_name = create_customer(session, first_name="Łukasz" + "x" * 94)
    for c in (inactive, bad_phone, long_name):
        create_qualification(session, c, qualification_month=MONTH)
    session.commit()

    with session_scope() as s:
        result = prepare_month(s, Month.of(MONTH))
    assert result.queued == 1
    assert result.skipped == {"INACTIVE": 1, "INVALID_PHONE": 1, "TOO_MANY_SEGMENTS": 1}
    reasons = {r.customer_id: r.status_reason for r in outbox(session) if r.status_reason}
    assert reasons == {
        inactive.id: "INACTIVE",
        bad_phone.id: "INVALID_PHONE",
        long_name.id: "TOO_MANY_SEGMENTS",
    }
    assert {r.submission_status for r in outbox(session) if r.status_reason} == {"Skipped"}


def test_audit_rows_carry_the_run_correlation_and_no_personal_data(
    session: Session, sms_env: object
) -> None:
    phones = qualified_customers(session, 2)
    with session_scope() as s:
        result = prepare_month(s, Month.of(MONTH))
    audits = session.scalars(select(AuditLog).where(AuditLog.entity_type == "Notification")).all()
    assert len(audits) == 2
    assert {a.correlation_id for a in audits} == {result.correlation_id}
    for a in audits:
        dumped = json.dumps(a.new_values, ensure_ascii=False)
        assert "phone_number" not in a.new_values and "sms_content" not in a.new_values
        assert not any(p in dumped for p in phones) and "Dana" not in dumped
    run = session.scalars(select(JobRun).where(JobRun.job == "notifications")).one()
    assert run.stats["queued"] == 2


def test_month_without_qualification_is_refused(session: Session, sms_env: object) -> None:
    with session_scope() as s, pytest.raises(OutboxError, match="qualify it first"):
        prepare_month(s, Month.of(MONTH))


def test_dry_run_reports_cost_and_writes_nothing(session: Session, sms_env: object) -> None:
    qualified_customers(session, 3)
    result = CliRunner().invoke(
        cli, ["run", "notifications", "--month", "2026-10", "--dry-run", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.output)
    assert summary["queued"] == 3 and summary["cost_segments"] == 3 and summary["dry_run"]
    assert outbox(session) == []
    assert session.scalar(select(Customer.id).limit(1)) is not None


def test_bad_month_is_a_clean_error(db: object) -> None:
    result = CliRunner().invoke(cli, ["run", "notifications", "--month", "2026-13"],
                                standalone_mode=False)  # fmt: skip
    assert "YYYY-MM" in str(result.exception) or "month" in str(result.exception)
