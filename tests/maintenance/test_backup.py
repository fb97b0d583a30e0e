"""Backup and restore with the real pg_dump/pg_restore, and the rotation policy."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.maintenance import backup
from tests.conftest import drop_database
from tests.support.factories import (
    create_check,
    create_customer,
    create_notification,
    create_qualification,
)


def test_backup_restores_into_a_fresh_database_with_equal_tables(
    session: Session, database_url: str, tmp_path: Path
) -> None:
    customer = create_customer(session, first_name="Ilan")
    create_check(session, customer)
    create_notification(session, create_qualification(session, customer))  # + audit rows
    session.commit()
    source = backup.Conn.from_url(database_url)

    dump = backup.backup(source, tmp_path)

    meta = json.loads(Path(str(dump) + ".json").read_text())
    assert meta["tables"]["customers"]["rows"] == 1
    assert meta["tables"]["audit_log"]["rows"] == 3  # check, qualification, notification
    target = source.with_database(f"pn_restore_{os.getpid()}")
    drop_database(database_url, target.database)
    try:
        result = backup.restore(dump, target)
        assert result["verified"] is True
        pg = source.connect()
        try:
            live = backup.fingerprints(pg)
        finally:
            pg.close()
        assert result["tables"] == live  # every table: same row count and checksum
        assert live["notifications"]["rows"] == 1
    finally:
        drop_database(database_url, target.database)


def test_restore_refuses_a_non_empty_database_and_a_tampered_dump(
    db: Engine, database_url: str, tmp_path: Path
) -> None:
    source = backup.Conn.from_url(database_url)
    dump = backup.backup(source, tmp_path)
    try:
        backup.restore(dump, source)
        raise AssertionError("restored over a live database")
    except backup.BackupError as exc:
        assert "not empty" in str(exc)
    with dump.open("ab") as fh:
        fh.write(b"tampered")
    try:
        backup.restore(dump, source.with_database("pn_never_created"))
        raise AssertionError("restored a tampered dump")
    except backup.BackupError as exc:
        assert "SHA-256" in str(exc)


def test_rotation_keeps_30_daily_weekly_for_90_days_monthly_for_a_year() -> None:
    now = datetime(2026, 11, 24, 3, 30, tzinfo=UTC)
    stamps = [now - timedelta(days=d) for d in range(0, 500)]  # one backup a day

    keep = backup.to_keep(stamps, now)

    ages = sorted((now - s).days for s in keep)
    assert ages[:31] == list(range(31))  # every daily of the last 30 days
    weekly = [s for s in keep if 30 < (now - s).days <= 90]
    assert all(s.isoweekday() == 1 or s.day == 1 for s in weekly)  # first of week/month
    assert len(weekly) in (8, 9, 10, 11)
    older = [s for s in keep if (now - s).days > 90]
    assert older and all(s.day == 1 for s in older)  # monthly only
    assert max((now - s).days for s in keep) <= 365


def test_rotate_deletes_files_and_textfile_is_written(tmp_path: Path) -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)
    for days in (1, 40, 41, 400):
        stamp = now - timedelta(days=days)
        (tmp_path / f"premium_{stamp:%Y%m%dT%H%M%SZ}.dump").write_bytes(b"x")
    (tmp_path / "other_20200101T000000Z.dump").write_bytes(b"x")  # another database

    deleted = backup.rotate(tmp_path, "premium", now)

    # 40 and 41 days ago share an ISO week and a month: the older one is their weekly and
    # monthly; 400 days is past a year. The other database's file is not ours to rotate.
    assert sorted(p.name for p in deleted) == [
        "premium_20251020T000000Z.dump",
        "premium_20261015T000000Z.dump",
    ]
    left = sorted(p.name for p in tmp_path.glob("*.dump"))
    assert left == [
        "other_20200101T000000Z.dump",
        "premium_20261014T000000Z.dump",
        "premium_20261123T000000Z.dump",
    ]
    prom = tmp_path / "pn_backup.prom"
    backup.write_textfile(prom, "premium", tmp_path / left[0], 1.5)
    text = prom.read_text()
    assert 'pn_backup_last_success_timestamp_seconds{database="premium"}' in text


def test_tool_matches_the_server_version(database_url: str) -> None:
    conn = backup.Conn.from_url(database_url)
    major = backup.server_major(conn)
    tool = backup.find_tool("pg_dump", major)
    assert backup._tool_major(tool) == major
    assert make_url(database_url).database  # sanity: a real database URL
