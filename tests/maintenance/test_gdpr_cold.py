"""GDPR across storage (issue 21): the export reads cold storage, the erasure rewrites it
and deletes the customer's messages at the carrier; no trace is left anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.maintenance import cold_storage, gdpr, retention
from app.maintenance.cold_store import ColdStore
from app.models import AuditLog
from app.notifications.carrier import CarrierError
from tests.conftest import ensure_test_partitions
from tests.support.carrier import client_for
from tests.support.db import all_text
from tests.support.factories import (
    create_check,
    create_customer,
    create_delivery_status,
    create_notification,
    create_qualification,
)

NOW = datetime(2026, 11, 20, 12, 0)
OLD = NOW - timedelta(days=400)  # 2025-10-16
ANCIENT = NOW - timedelta(days=800)  # 2024-09-11
PHONE = "+972541234567"
EMAIL = "yael.zilberstein@example.org"
TRACES = ("Yael", "Zilberstein", EMAIL, PHONE, "0541234567", "054-123-4567")


@pytest.fixture(autouse=True)
def _partitions_back(database_url: str) -> Iterator[None]:
    yield
    ensure_test_partitions(database_url)


def _history(session: Session, sim: SimulatorThread) -> tuple[Any, str]:
    """A customer whose old months went to cold storage, with a message at the carrier;
    and a neighbour."""
    sid = client_for(sim).send(PHONE, "Shalom Yael Zilberstein, you are premium").sid
    customer = create_customer(
        session, first_name="Yael", last_name="Zilberstein", email=EMAIL, phone_number=PHONE
    )
    qual = create_qualification(session, customer, qualification_month=date(2025, 9, 1))
    note = create_notification(
        session,
        qual,
        created_at=OLD,
        carrier_reference_id=sid,
        submission_status="Submitted",
        sms_content="Shalom Yael Zilberstein, you are premium",
    )
    create_delivery_status(session, note, status="Delivered", created_at=OLD)
    for day in (1, 2, 3):
        create_check(session, customer, check_date=date(2025, 9, day))
    session.add(
        AuditLog(
            entity_type="Customer",
            entity_id=customer.id,
            operation="UPDATE",
            timestamp=ANCIENT,
            new_values={"email": EMAIL, "who": "Yael Zilberstein", "phone": "054-123-4567"},
        )
    )
    other = create_customer(session, first_name="Noa", last_name="Barak")
    create_check(session, other, check_date=date(2025, 9, 1))
    session.add(
        AuditLog(
            entity_type="Customer",
            entity_id=other.id,
            operation="UPDATE",
            timestamp=ANCIENT,
            new_values={"who": "Noa Barak"},
        )
    )
    session.commit()
    return customer, sid


def _cold_text(store: ColdStore) -> str:
    """Every string value of every file in cold storage (not only those manifests name)."""
    parts = []
    for relative in store.glob("*/*/*/*.parquet"):
        with store.open(relative) as fh:
            table = pq.read_table(fh)
        for field in table.schema:
            if pa.types.is_string(field.type):
                parts += [v for v in table.column(field.name).to_pylist() if v]
    return "\n".join(parts)


@pytest.fixture
def cold(session: Session, tmp_path: Path, carrier_sim: SimulatorThread) -> Any:
    store = ColdStore(str(tmp_path / "cold"))
    customer, sid = _history(session, carrier_sim)
    retention.run(
        session_scope, store=store, today_local=NOW.date(), now_utc=NOW, triggered_by="test"
    )
    return store, customer, sid


def test_export_includes_the_customers_cold_rows(session: Session, cold: Any) -> None:
    store, customer, sid = cold
    assert session.scalar(text("SELECT count(*) FROM notifications")) == 0  # all cold now
    doc = gdpr.export(session, customer.account_number, operator="test", store=store)
    session.commit()
    tables = doc["tables"]
    assert len(tables["daily_balance_checks_cold"]) == 3
    assert {r["customer_id"] for r in tables["daily_balance_checks_cold"]} == {str(customer.id)}
    assert [r["carrier_reference_id"] for r in tables["notifications_cold"]] == [sid]
    assert len(tables["delivery_status_cold"]) == 1
    assert len(tables["monthly_qualifications_cold"]) == 1
    assert any(r["operation"] == "UPDATE" for r in tables["audit_log_cold"])
    assert doc["counts"]["daily_balance_checks_cold"] == 3
    assert "Noa" not in str(doc)


def test_anonymise_leaves_no_trace_in_the_database_or_cold_storage(
    session: Session, cold: Any, carrier_sim: SimulatorThread
) -> None:
    store, customer, sid = cold
    before = _cold_text(store)
    assert PHONE in before and "Zilberstein" in before and EMAIL in before  # the test sees
    client = client_for(carrier_sim)

    counts = gdpr.erase(
        session,
        customer.account_number,
        anonymise=True,
        operator="test",
        store=store,
        carrier=client,
    )
    session.commit()

    after_db, after_cold = all_text(session), _cold_text(store)
    for value in TRACES:
        assert value.lower() not in after_db.lower(), value
        assert value.lower() not in after_cold.lower(), value
    assert counts["notifications_cold"] == 1 and counts["audit_log_cold"] >= 1
    assert "Noa Barak" in after_cold  # the neighbour is untouched
    # Rewritten sets: new file, new manifest, old file gone; the sets still verify.
    for unit, manifest in cold_storage.manifests(store):
        assert cold_storage.verify_set(store, unit) == []
        named = {f["file"] for f in manifest["files"]}
        assert set(store.glob(f"{unit.prefix}/*.parquet")) == {f"{unit.prefix}/{n}" for n in named}
    notes = cold_storage.manifests(store)
    rewritten = [m for u, m in notes if u.table == "notifications"][0]["files"][0]
    assert rewritten["reason"] == "gdpr-erasure"
    # The carrier deleted the message, and the audit row says so.
    with pytest.raises(CarrierError, match="HTTP 404"):
        client.fetch(sid)
    assert not client.delete(sid)  # already gone: 404
    details = session.scalar(text("SELECT details FROM audit_log WHERE operation = 'GDPR_ERASE'"))
    assert details["carrier"]["deleted"] == [sid] and details["carrier"]["failed"] == []
