"""Retention: archival in FK order, cold-storage export, idempotence, resuming after a crash."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.maintenance import cold_storage, retention
from app.models import AuditLog, SystemEvent
from tests.support.factories import (
    create_check,
    create_customer,
    create_delivery_status,
    create_notification,
    create_qualification,
)

NOW = datetime(2026, 11, 20, 12, 0)
TODAY = date(2026, 11, 20)
OLD = NOW - timedelta(days=400)  # past the 1-year hot period
ANCIENT = NOW - timedelta(days=800)  # past the audit log's 2 years


def _count(session: Session, table: str) -> int:
    return int(session.scalar(text(f"SELECT count(*) FROM {table}")) or 0)


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


def _policy(tmp_path: Path, batch: int = 2) -> retention.Policy:
    return retention.Policy(batch_size=batch, cold_dir=tmp_path / "cold")


def test_archives_in_fk_order_exports_and_is_idempotent(session: Session, tmp_path: Path) -> None:
    _seed(session)
    hot_audit = _count(session, "audit_log")

    result = retention.run(
        session_scope, policy=_policy(tmp_path), triggered_by="test", today_local=TODAY, now_utc=NOW
    )

    assert result.moved == {
        "delivery_status": 4,
        "notifications": 2,
        "monthly_qualifications": 2,
        "daily_balance_checks": 3,
        "audit_log": 1,
    }
    assert result.events_deleted == 1
    for table, hot, archived in (
        ("delivery_status", 1, 4),
        ("notifications", 2, 2),
        ("monthly_qualifications", 2, 2),
        ("daily_balance_checks", 1, 3),
        # one moved out; the run's own row and one DELETE row per archived row added
        ("audit_log", hot_audit + 11, 1),
    ):
        assert (_count(session, table), _count(session, f"{table}_archive")) == (hot, archived)
    events = session.scalars(text("SELECT event_type FROM system_events ORDER BY 1")).all()
    assert events == ["new", "retention.finished"]

    # Cold storage: one file per archive table, manifest and checksums that verify.
    folder = Path(result.export_folder or "")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["table"]: f["rows"] for f in manifest["files"]} == {
        "audit_log_archive": 1,
        "daily_balance_checks_archive": 3,
        "delivery_status_archive": 4,
        "monthly_qualifications_archive": 2,
        "notifications_archive": 2,
    }
    assert cold_storage.verify(folder) == []
    with gzip.open(folder / "notifications_archive.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    archived_ids = set(session.scalars(text("SELECT id::text FROM notifications_archive")))
    assert {r["id"] for r in rows} == archived_ids
    # The run is recorded, with its own audit row and event.
    run = session.execute(text("SELECT status, stats FROM job_runs WHERE job = 'retention'")).one()
    assert run.status == "Finished" and run.stats["archived"] == 12
    assert _count(session, "audit_log WHERE entity_type = 'RetentionRun'") == 1

    # Idempotent: the second run moves and exports nothing.
    again = retention.run(
        session_scope, policy=_policy(tmp_path), triggered_by="test", today_local=TODAY, now_utc=NOW
    )
    assert sum(again.moved.values()) == 0 and again.exported_files == []
    assert again.export_folder is None


def test_a_corrupted_file_fails_verification(session: Session, tmp_path: Path) -> None:
    _seed(session)
    result = retention.run(session_scope, policy=_policy(tmp_path), today_local=TODAY, now_utc=NOW)
    folder = Path(result.export_folder or "")
    target = folder / "daily_balance_checks_archive.csv.gz"
    target.write_bytes(target.read_bytes()[:-3] + b"xyz")
    assert cold_storage.verify(folder) == ["daily_balance_checks_archive.csv.gz: checksum mismatch"]


def _failing_after(n: int) -> Callable[[], AbstractContextManager[Session]]:
    """session_scope, except that the n-th transaction dies before committing."""
    calls = {"n": 0}

    @contextmanager
    def scope() -> Iterator[Session]:
        with session_scope() as s:
            calls["n"] += 1
            yield s
            if calls["n"] == n:
                raise RuntimeError("worker killed")

    return scope


def test_resumes_after_a_crash_and_exports_what_the_dead_run_archived(
    session: Session, tmp_path: Path
) -> None:
    _seed(session)
    # Transaction 1 opens the run, 2-4 move delivery_status (2 + 2 + 0 rows), 5 (the first
    # notifications batch) dies before its commit.
    with pytest.raises(RuntimeError, match="worker killed"):
        retention.run(
            _failing_after(5),
            policy=_policy(tmp_path),
            today_local=TODAY,
            now_utc=NOW,
        )
    assert _count(session, "delivery_status_archive") == 4  # whole batches committed
    assert _count(session, "notifications_archive") == 0  # the dying batch rolled back
    status = session.scalar(text("SELECT status FROM job_runs WHERE job = 'retention'"))
    assert status == "Failed"

    result = retention.run(session_scope, policy=_policy(tmp_path), today_local=TODAY, now_utc=NOW)

    assert result.moved["delivery_status"] == 0 and result.moved["notifications"] == 2
    exported = {f["table"]: f["rows"] for f in result.exported_files}
    assert exported["delivery_status_archive"] == 4  # archived by the dead run, exported now
    assert _count(session, "notifications") == 2


def test_concurrent_run_is_skipped(db: Engine, tmp_path: Path) -> None:
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": retention.LOCK_KEY})
        result = retention.run(
            session_scope, policy=_policy(tmp_path), today_local=TODAY, now_utc=NOW
        )
        holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": retention.LOCK_KEY})
    assert result.skipped and result.run_id is None


def test_kick_time_must_exist_every_day() -> None:
    from pydantic import ValidationError

    from app.config import Settings

    with pytest.raises(ValidationError, match="03:00 or later"):
        Settings(retention_kick_time="02:30")
    assert Settings().retention_kick_time == "04:30"
