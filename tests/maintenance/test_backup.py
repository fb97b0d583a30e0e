"""Logical exports: encrypted pg_dump, verified restore, erasures re-applied, rotation."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.maintenance import backup, gdpr
from app.maintenance.pgconn import Conn
from tests.conftest import drop_database
from tests.support.backup import isolated_backup_env
from tests.support.db import all_text
from tests.support.factories import (
    create_check,
    create_customer,
    create_notification,
    create_qualification,
)

PHONE = "+972541234567"


@pytest.fixture
def backup_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from isolated_backup_env(tmp_path, monkeypatch)


def test_export_is_encrypted_private_and_restores_with_equal_tables(
    session: Session, database_url: str, backup_env: Path
) -> None:
    customer = create_customer(session, first_name="Ilanit", phone_number=PHONE)
    create_check(session, customer)
    create_notification(session, create_qualification(session, customer))  # + audit rows
    session.commit()
    source = backup.Conn.from_url(database_url)
    folder = backup_env / "exports"

    dump = backup.backup(source, folder)

    assert dump.name.endswith(".dump.age")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in (dump, Path(str(dump) + ".json")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = dump.read_bytes()
    assert body.startswith(b"age-encryption.org/v1")
    assert b"PGDMP" not in body and b"Ilanit" not in body and PHONE.encode() not in body
    assert sorted(p.name for p in folder.iterdir()) == [dump.name, dump.name + ".json"]
    meta = json.loads(Path(str(dump) + ".json").read_text())
    assert meta["tables"]["customers"]["rows"] == 1
    assert meta["tables"]["audit_log"]["rows"] == 4  # customer, check, qualification, notification
    # The audit chain's head travels with the export (`audit verify --heads <sidecar>`).
    (head,) = meta["audit_chain_heads"]
    assert head["seq"] == meta["tables"]["audit_seals"]["rows"] and len(head["seal"]) == 64
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


def test_restore_refuses_a_non_empty_database_and_checks_before_decrypting(
    db: Engine, database_url: str, backup_env: Path
) -> None:
    source = backup.Conn.from_url(database_url)
    dump = backup.backup(source, backup_env / "exports")
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(dump, source)
    with dump.open("ab") as fh:
        fh.write(b"tampered")
    (backup_env / "keys" / "identity.txt").unlink()  # the digest is checked without the key
    with pytest.raises(backup.BackupError, match="SHA-256"):
        backup.restore(dump, source.with_database("pn_never_created"))


def test_an_erased_customer_does_not_come_back_with_an_older_export(
    session: Session, database_url: str, backup_env: Path
) -> None:
    customer = create_customer(
        session, first_name="Yael", last_name="Zilberstein", phone_number=PHONE
    )
    create_notification(
        session, create_qualification(session, customer), sms_content="Shalom Yael Zilberstein"
    )
    other = create_customer(session, first_name="Noa", last_name="Barak")
    session.commit()
    dump = backup.backup(Conn.from_url(database_url), backup_env / "exports")
    gdpr.erase(session, customer.account_number, anonymise=True, operator="test")
    session.commit()
    target = f"pn_restore_erased_{os.getpid()}"
    drop_database(database_url, target)
    try:
        result = CliRunner().invoke(cli, ["db", "restore", str(dump), "--target-db", target])
        assert result.exit_code == 0, result.output
        assert "1 re-applied" in result.output

        restored_url = make_url(database_url).set(database=target)
        from sqlalchemy import create_engine

        engine = create_engine(restored_url)
        try:
            with Session(engine) as restored:
                everything = all_text(restored)
                row = restored.execute(
                    text("SELECT is_active, anonymised_at FROM customers WHERE id = :c"),
                    {"c": customer.id},
                ).one()
                reapplied = restored.scalar(
                    text("SELECT user_id FROM audit_log WHERE operation = 'GDPR_ERASE'")
                )
        finally:
            engine.dispose()
        for value in ("Yael", "Zilberstein", PHONE, "054-123-4567"):
            assert value not in everything, value
        assert row.is_active is False and row.anonymised_at is not None
        assert str(reapplied).startswith("restore:erasure-journal:")
        assert other.first_name in everything  # only the erased customer is touched
    finally:
        drop_database(database_url, target)


def test_every_parameter_of_the_database_url_reaches_the_tools() -> None:
    url = (
        "postgresql+psycopg2://pn:s3cret@db.bank.internal:6432/premium?sslmode=verify-full"
        "&sslrootcert=/run/secrets/ca.pem&sslcert=/run/secrets/client.crt"
        "&sslkey=/run/secrets/client.key&application_name=pn-backup&connect_timeout=7"
    )
    conn = Conn.from_url(url)

    service = conn.service_text()
    for line in ("host=db.bank.internal", "port=6432", "user=pn", "password=s3cret",
                 "dbname=premium", "sslmode=verify-full", "sslrootcert=/run/secrets/ca.pem",
                 "sslcert=/run/secrets/client.crt", "sslkey=/run/secrets/client.key",
                 "application_name=pn-backup", "connect_timeout=7"):
        assert line in service.splitlines(), line
    with conn.tool_env({"PGSSLMODE": "disable", "PATH": "/usr/bin"}) as env:
        service_file = Path(env["PGSERVICEFILE"])
        assert stat.S_IMODE(service_file.stat().st_mode) == 0o600
        assert "PGSSLMODE" not in env and env["PGSERVICE"] == "pn"  # no weaker leftovers
        assert "s3cret" not in " ".join(env.values())
    assert not service_file.exists()
    assert make_url(conn.url()).query["sslmode"] == "verify-full"
    multi = Conn.from_url(
        "postgresql+psycopg2://postgres@/premium?host=10.0.0.1:5432&host=10.0.0.2:5433"
        "&target_session_attrs=read-write"
    )
    assert (multi.host, multi.port) == ("10.0.0.1,10.0.0.2", "5432,5433")
    assert multi.options["target_session_attrs"] == "read-write"


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
        (tmp_path / f"premium_{stamp:%Y%m%dT%H%M%SZ}.dump.age").write_bytes(b"x")
    (tmp_path / "other_20200101T000000Z.dump.age").write_bytes(b"x")  # another database

    deleted = backup.rotate(tmp_path, "premium", now)

    # 40 and 41 days ago share an ISO week and a month: the older one is their weekly and
    # monthly; 400 days is past a year. The other database's file is not ours to rotate.
    assert sorted(p.name for p in deleted) == [
        "premium_20251020T000000Z.dump.age",
        "premium_20261015T000000Z.dump.age",
    ]
    left = sorted(p.name for p in tmp_path.glob("*.dump.age"))
    assert left == [
        "other_20200101T000000Z.dump.age",
        "premium_20261014T000000Z.dump.age",
        "premium_20261123T000000Z.dump.age",
    ]
    prom = tmp_path / "pn_backup_export.prom"
    backup.write_textfile(prom, "premium", tmp_path / left[0], 1.5)
    text_ = prom.read_text()
    # Named apart from the physical backups': an export never silences BackupMissing.
    assert 'pn_backup_export_last_success_timestamp_seconds{database="premium"}' in text_
    assert "pn_backup_last_success_timestamp_seconds" not in text_


def test_tool_matches_the_server_version(database_url: str) -> None:
    conn = backup.Conn.from_url(database_url)
    major = backup.server_major(conn)
    tool = backup.find_tool("pg_dump", major)
    from app.maintenance.pgtools import _tool_major

    assert _tool_major(tool) == major
    assert make_url(database_url).database  # sanity: a real database URL


def test_pitr_refuses_bad_operator_input_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "PG_VERSION").write_text("15\n")
    for args, message in (
        (["--pgdata", str(tmp_path / "new"), "--target-time", "2026-11-30T14:05"], "UTC offset"),
        (["--pgdata", str(tmp_path / "old")], "not empty"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "app.cli.main", "db", "pitr", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "300"},  # rich wraps at the terminal's width
        )
        assert done.returncode == 2, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
