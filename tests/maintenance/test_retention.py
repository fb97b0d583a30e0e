"""Retention by partition (issue 21): months leave for cold storage (Parquet + manifest),
partitions are dropped, FK order, idempotence, resuming, expiry; a local folder and S3."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.maintenance import cold_storage, retention, retention_units
from app.maintenance.cold_storage import Unit
from app.maintenance.cold_store import ColdStore
from app.models import AuditLog, SystemEvent
from app.months import Month
from tests.conftest import ensure_test_partitions
from tests.support.factories import (
    create_check,
    create_customer,
    create_delivery_status,
    create_notification,
    create_qualification,
)

NOW = datetime(2026, 11, 20, 12, 0)
TODAY = date(2026, 11, 20)
OLD = NOW - timedelta(days=400)  # 2025-10-16: past the 1-year hot period
ANCIENT = NOW - timedelta(days=800)  # 2024-09-11: past the audit log's 2 years


@pytest.fixture(autouse=True)
def _partitions_back(database_url: str) -> Iterator[None]:
    """Retention drops the test months' partitions: the next tests need them again."""
    yield
    ensure_test_partitions(database_url)


def _count(session: Session, table: str) -> int:
    return int(session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


def _partitions(session: Session) -> set[str]:
    return set(
        session.scalars(
            text("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid")
        )
    )


def _seed(session: Session) -> None:
    """Two old notification histories, one recent; old and recent checks, audit, events."""
    customer = create_customer(session)
    for month in (date(2025, 8, 1), date(2025, 9, 1)):
        qual = create_qualification(session, customer, qualification_month=month)
        note = create_notification(session, qual, created_at=OLD)
        for status in ("Pending", "Delivered"):
            create_delivery_status(session, note, status=status, created_at=OLD)
    recent = create_qualification(session, customer, qualification_month=date(2026, 10, 1))
    create_delivery_status(session, create_notification(session, recent), status="Pending")
    # An old qualification whose notification is recent must wait for it (FK).
    late = create_qualification(session, customer, qualification_month=date(2025, 7, 1))
    create_notification(session, late)
    for day in range(1, 4):
        create_check(session, customer, check_date=date(2025, 9, day))
    create_check(session, customer, check_date=date(2026, 11, 1))
    session.add(AuditLog(entity_type="Test", operation="PROCESS", timestamp=ANCIENT))
    session.add(SystemEvent(event_type="old", created_at=OLD))
    session.add(SystemEvent(event_type="new", created_at=NOW))
    session.commit()


def _run(store: ColdStore, scope: Any = session_scope, **kw: Any) -> retention.RetentionResult:
    return retention.run(
        scope, store=store, triggered_by="test", today_local=TODAY, now_utc=NOW, **kw
    )


def _sets(store: ColdStore) -> dict[str, int]:
    return {unit.prefix: m["rows"] for unit, m in cold_storage.manifests(store)}


EXPECTED_SETS = {
    "audit_log/2024/09": 1,
    "daily_balance_checks/2025/09": 3,
    "delivery_status/2025/10": 4,
    "notifications/2025/10": 2,
    "monthly_qualifications/2025/08": 1,
    "monthly_qualifications/2025/09": 1,
}


def _check_retired(session: Session, store: ColdStore) -> None:
    assert _sets(store) == EXPECTED_SETS
    for unit, _ in cold_storage.manifests(store):
        assert cold_storage.verify_set(store, unit) == []
    left = _partitions(session)
    assert "daily_balance_checks_p202509" not in left  # exported, then dropped
    assert "audit_log_p202409" not in left
    assert "system_events_p202510" not in left  # past a year: dropped
    assert {"daily_balance_checks_p202511", "audit_log_p202411"} <= left  # still hot
    assert _count(session, "daily_balance_checks") == 1
    assert _count(session, "delivery_status") == 1
    assert _count(session, "notifications") == 2  # the recent one and the late one
    assert _count(session, "monthly_qualifications") == 2  # 2026-10 and the late 2025-07
    assert _count(session, "audit_log WHERE timestamp < '2024-10-01'") == 0
    assert session.scalars(text("SELECT event_type FROM system_events ORDER BY 1")).all() == [
        "new",
        "retention.finished",
    ]
    for table in ("daily_balance_checks", "audit_log", "notifications"):
        assert _count(session, f"{table}_archive") == 0  # no row moves, no archive tables


def test_retires_months_to_a_local_folder_and_is_idempotent(
    session: Session, tmp_path: Path
) -> None:
    _seed(session)
    store = ColdStore(str(tmp_path / "cold"))
    result = _run(store)
    _check_retired(session, store)

    manifest = cold_storage.read_manifest(store, Unit("audit_log", Month(2024, 9)))
    assert manifest is not None
    assert manifest["retention_class"] == "audit" and manifest["expires_on"] == "2034-10-01"
    assert {c["name"] for c in manifest["schema"]} >= {"id", "timestamp", "details"}
    checks = cold_storage.read_manifest(store, Unit("daily_balance_checks", Month(2025, 9)))
    assert checks is not None and checks["retention_class"] == "standard"
    assert checks["expires_on"] == "2032-10-01" and checks["customer_column"] == "customer_id"
    folder = tmp_path / "cold" / "daily_balance_checks" / "2025" / "09"
    part = f"daily_balance_checks/2025/09/{checks['files'][0]['file']}"
    assert (folder / checks["files"][0]["file"]).read_bytes().startswith(b"age-encryption.org/")
    with store.open(part) as fh:  # verified against SHA256SUMS, then decrypted
        table = pq.read_table(fh)
    assert sorted(d.isoformat() for d in table.column("check_date").to_pylist()) == [
        "2025-09-01",
        "2025-09-02",
        "2025-09-03",
    ]
    sums = (folder / "SHA256SUMS").read_text().split()
    assert sums == [checks["files"][0]["sha256"], checks["files"][0]["file"]]
    # Never world-readable: folders 0700, files 0600.
    for root, dirs, files in os.walk(tmp_path / "cold"):
        for d in dirs:
            assert stat.S_IMODE(os.stat(Path(root) / d).st_mode) == 0o700
        for f in files:
            assert stat.S_IMODE(os.stat(Path(root) / f).st_mode) == 0o600
    # Recorded and audited.
    run = session.execute(text("SELECT status, stats FROM job_runs WHERE job = 'retention'")).one()
    assert run.status == "Finished" and run.stats["exported_rows"] == 12
    assert _count(session, "audit_log WHERE entity_type = 'RetentionRun'") == 1
    assert _count(session, "audit_log WHERE entity_type = 'ColdStorageSet'") == 4
    assert _count(session, "audit_log WHERE entity_type = 'Partition'") == len(result.dropped)

    again = _run(store)
    assert again.exported == [] and again.dropped == [] and again.expired == []
    assert _sets(store) == EXPECTED_SETS


def _failing_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first small-table delete dies (after its set's manifest was written)."""
    real = retention_units.repository.delete_month
    calls = {"n": 0}

    def delete_month(*args: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("worker killed")
        return real(*args)

    monkeypatch.setattr(retention_units.repository, "delete_month", delete_month)


def test_resumes_after_a_crash_without_duplicates(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(session)
    store = ColdStore(str(tmp_path / "cold"))
    _failing_delete(monkeypatch)
    with pytest.raises(RuntimeError, match="worker killed"):
        _run(store)
    assert _count(session, "delivery_status") == 5  # the month's transaction rolled back
    assert session.scalar(text("SELECT status FROM job_runs WHERE job = 'retention'")) == "Failed"
    _run(store)
    _check_retired(session, store)  # the set written before the crash holds no duplicate


def test_a_corrupted_object_fails_verification(session: Session, tmp_path: Path) -> None:
    _seed(session)
    store = ColdStore(str(tmp_path / "cold"))
    _run(store)
    unit = Unit("daily_balance_checks", Month(2025, 9))
    manifest = cold_storage.read_manifest(store, unit)
    assert manifest is not None
    target = tmp_path / "cold" / unit.prefix / manifest["files"][0]["file"]
    target.write_bytes(target.read_bytes()[:-3] + b"xyz")
    assert [p.split(": ")[1] for p in cold_storage.verify_set(store, unit)] == ["checksum mismatch"]


def test_expired_sets_are_deleted_and_audited_younger_ones_stay(
    session: Session, tmp_path: Path
) -> None:
    _seed(session)
    store = ColdStore(str(tmp_path / "cold"))
    _run(store)
    with session_scope() as s:
        run_id = s.scalar(text("SELECT id FROM job_runs WHERE job = 'retention'"))
        correlation = s.scalar(
            text("SELECT correlation_id FROM job_runs WHERE id = :i"), {"i": run_id}
        )
    ctx = retention_units.Context(session_scope, store, str(run_id), correlation, "test")
    # 2033-01-01: the 2025 sets (kept 7 years after their month) have expired; the audit
    # log's 2024-09 set (10 years, until 2034-10-01) has not.
    expired = retention_units.expire(ctx, date(2033, 1, 1))
    assert sorted(expired) == sorted(p for p in EXPECTED_SETS if not p.startswith("audit_log"))
    assert _sets(store) == {"audit_log/2024/09": 1}
    assert not (
        tmp_path / "cold" / "daily_balance_checks" / "2025" / "09" / "manifest.json"
    ).exists()
    assert list((tmp_path / "cold" / "notifications" / "2025" / "10").iterdir()) == []
    deletions = (
        session.execute(
            text(
                "SELECT details FROM audit_log WHERE entity_type = 'ColdStorageSet' "
                "AND operation = 'DELETE'"
            )
        )
        .scalars()
        .all()
    )
    assert sorted(d["table"] + "/" + d["month"] for d in deletions) == sorted(
        f"{p.split('/')[0]}/{p.split('/')[1]}-{p.split('/')[2]}"
        for p in EXPECTED_SETS
        if not p.startswith("audit_log")
    )


def test_concurrent_run_is_skipped(db: Engine, tmp_path: Path) -> None:
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": retention.LOCK_KEY})
        result = _run(ColdStore(str(tmp_path / "cold")))
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.LOCK_KEY})
    assert result.skipped and result.run_id is None


@pytest.fixture
def s3_store() -> Iterator[ColdStore]:
    """An S3-compatible server (moto's, on loopback) with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
        Bucket="pn-cold"
    )
    try:
        yield ColdStore(
            "s3://pn-cold/bank",
            {
                "key": "test",
                "secret": "test",
                "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"},
                "s3_additional_kwargs": {"ServerSideEncryption": "AES256"},
            },
        )
    finally:
        server.stop()


def test_retires_months_to_an_s3_bucket(session: Session, s3_store: ColdStore) -> None:
    import boto3

    _seed(session)
    _run(s3_store)
    _check_retired(session, s3_store)
    client = boto3.client(
        "s3",
        endpoint_url=s3_store.storage_options["client_kwargs"]["endpoint_url"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    key = "bank/daily_balance_checks/2025/09/manifest.json"
    head = client.head_object(Bucket="pn-cold", Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    manifest = json.loads(client.get_object(Bucket="pn-cold", Key=key)["Body"].read())
    assert manifest["rows"] == 3
    assert _run(s3_store).exported == []
