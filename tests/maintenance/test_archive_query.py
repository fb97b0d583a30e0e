"""``archive query``: auditors read cold storage with DuckDB, read-only, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.maintenance import archive_query, retention
from app.maintenance.cold_store import ColdStore
from app.models import AuditLog
from tests.conftest import ensure_test_partitions
from tests.support.factories import create_check, create_customer

NOW = datetime(2026, 11, 20, 12, 0)


@pytest.fixture
def store(session: Session, tmp_path: Path, database_url: str) -> Iterator[ColdStore]:
    customer = create_customer(session)
    for day in (1, 2, 3):
        create_check(session, customer, check_date=date(2025, 9, day))
    session.add(AuditLog(entity_type="Test", operation="PROCESS", timestamp=datetime(2024, 9, 3)))
    session.commit()
    cold = ColdStore(str(tmp_path / "cold"))
    retention.run(session_scope, store=cold, today_local=NOW.date(), now_utc=NOW)
    yield cold
    ensure_test_partitions(database_url)


def test_a_select_reads_every_cold_table(store: ColdStore) -> None:
    columns, rows = archive_query.run(
        store,
        "SELECT count(*) AS n, min(check_date) AS first FROM daily_balance_checks",
    )
    assert columns == ["n", "first"] and rows == [(3, date(2025, 9, 1))]
    _, rows = archive_query.run(store, "SELECT entity_type FROM audit_log")
    assert rows == [("Test",)]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM audit_log", "only SELECT"),
        ("COPY audit_log TO '/tmp/x.csv'", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
        ("SELEC nonsense", "syntax error"),
    ],
)
def test_anything_but_one_select_is_refused(store: ColdStore, sql: str, message: str) -> None:
    with pytest.raises(archive_query.QueryError, match=message) as caught:
        archive_query.run(store, sql)
    assert "\n" not in str(caught.value)


def test_cli_prints_rows_and_one_line_errors(store: ColdStore) -> None:
    env = {**os.environ, "COLD_STORAGE_DIR": store.root}
    cmd = [sys.executable, "-m", "app.cli.main", "archive", "query"]
    ok = subprocess.run(
        [*cmd, "SELECT count(*) AS n FROM daily_balance_checks", "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == [{"n": 3}]
    refused = subprocess.run(
        [*cmd, "DROP TABLE audit_log"], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
