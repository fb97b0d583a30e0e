"""The GDPR erasure journal: append-only, hash-chained, encrypted, outside the database."""

from __future__ import annotations

import base64
import stat
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.session import session_scope
from app.maintenance import encryption, erasure_journal, erasure_replay, gdpr
from tests.support.backup import isolated_backup_env
from tests.support.factories import create_customer


@pytest.fixture
def backup_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from isolated_backup_env(tmp_path, monkeypatch)


def test_entries_are_encrypted_chained_private_and_hold_only_the_customer_id(
    backup_env: Path,
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    for n, cid in enumerate(ids):
        erasure_journal.record(cid, anonymise=n != 1)

    entries = erasure_journal.read()

    assert [e.customer_id for e in entries] == ids
    assert [e.mode for e in entries] == ["anonymise", "deactivate", "anonymise"]
    journal = erasure_journal.path()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.parent.stat().st_mode) == 0o700
    raw = journal.read_text()
    assert all(str(cid) not in raw for cid in ids)  # nothing readable without the key
    payload = raw.splitlines()[0].split(" ")[2]
    clear = encryption.decrypt(base64.b64decode(payload), get_settings().backup_age_identity_file)
    assert set(__import__("json").loads(clear)) == {"id", "customer_id", "at", "mode"}


def test_a_removed_or_altered_line_breaks_the_chain(backup_env: Path) -> None:
    for _ in range(3):
        erasure_journal.record(uuid.uuid4(), anonymise=True)
    journal = erasure_journal.path()
    lines = journal.read_text().splitlines(keepends=True)
    assert len(erasure_journal.verify(journal)) == 3

    journal.write_text(lines[0] + lines[2])
    with pytest.raises(erasure_journal.JournalError, match="breaks at line 2"):
        erasure_journal.verify(journal)
    line = lines[1]
    altered = line[:100] + ("A" if line[100] != "A" else "B") + line[101:]  # in the payload
    journal.write_text(lines[0] + altered + lines[2])
    with pytest.raises(erasure_journal.JournalError, match="breaks at line 3"):
        erasure_journal.verify(journal)


def test_concurrent_appends_keep_one_chain(backup_env: Path) -> None:
    def erase_five() -> None:
        for _ in range(5):
            erasure_journal.record(uuid.uuid4(), anonymise=False)

    threads = [threading.Thread(target=erase_five) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(erasure_journal.verify(erasure_journal.path())) == 20


def test_replays_are_not_journalled_again(backup_env: Path) -> None:
    with erasure_journal.replaying():
        erasure_journal.record(uuid.uuid4(), anonymise=True)
    assert not erasure_journal.path().exists()


def test_gdpr_erase_journals_and_rolls_back_when_it_cannot(
    session: Session, backup_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = create_customer(session)
    other = create_customer(session)
    session.commit()
    gdpr.erase(session, customer.account_number, anonymise=True, operator="test")
    session.commit()
    (entry,) = erasure_journal.read()
    assert (entry.customer_id, entry.mode) == (customer.id, "anonymise")

    blocker = backup_env / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("ERASURE_JOURNAL_DIR", str(blocker / "journal"))
    get_settings.cache_clear()
    with pytest.raises(erasure_journal.JournalError):
        gdpr.erase(session, other.account_number, operator="test")
    session.rollback()
    active = session.scalar(text("SELECT is_active FROM customers WHERE id = :c"), {"c": other.id})
    assert active is True  # no erasure without its journal line


def test_replay_applies_newer_entries_once_and_skips_the_rest(
    session: Session, backup_env: Path
) -> None:
    old, new, done = (create_customer(session) for _ in range(3))
    session.commit()
    for customer in (old, new, done):
        erasure_journal.record(customer.id, anonymise=True)
    erasure_journal.record(uuid.uuid4(), anonymise=False)  # a customer the backup lacks
    entries = erasure_journal.read()
    with erasure_journal.replaying():  # "done" is erased already in the restored data
        gdpr.erase(session, done.account_number, anonymise=True, operator="test")
    session.commit()
    assert len(erasure_journal.read()) == 4  # a replay is not journalled again

    # Restored to just before the second entry: "old" is part of the restored data.
    report = erasure_replay.reapply(session_scope, entries[1].at, margin=timedelta(0))

    counts = (report.considered, report.applied, report.already_erased, report.unknown_customer)
    assert counts == (3, 1, 1, 1)
    rows = dict(session.execute(text("SELECT id, anonymised_at IS NOT NULL FROM customers")).all())
    assert rows == {old.id: False, new.id: True, done.id: True}
    audit = session.scalars(
        text("SELECT user_id FROM audit_log WHERE operation = 'GDPR_ERASE' ORDER BY timestamp")
    ).all()
    assert audit[-1] == f"restore:erasure-journal:{entries[1].id}"
    # An older restored point: "old" comes in too; nothing is applied twice.
    again = erasure_replay.reapply(session_scope, entries[0].at - timedelta(minutes=10))
    assert (again.considered, again.applied, again.already_erased) == (4, 1, 2)
