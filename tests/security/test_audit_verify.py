"""`audit verify`: the chain is intact after normal work, and every kind of tampering a
superuser can do directly in the tables is found and named."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.common import UserError
from app.cli.main import cli
from app.maintenance import audit_verify
from tests.security.conftest import tamper


def _verify(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", *args])
    if isinstance(result.exception, UserError):  # app.cli.errors maps it to 2 (one line)
        return 2, str(result.exception)
    return result.exit_code, result.output


def _one(session: Session, sql: str) -> object:
    return session.execute(text(sql)).scalar_one()


def test_an_untouched_trail_verifies(audited: Session) -> None:
    seals = _one(audited, "SELECT count(*) FROM audit_seals")
    assert seals == 4  # customer insert, check insert, two-row insert, update
    assert _one(audited, "SELECT count(*) FROM audit_log WHERE row_hash IS NULL") == 0
    assert _one(audited, "SELECT count(*) FROM audit_pending_seals") == 0
    code, output = _verify()
    assert code == 0, output
    assert "audit trail intact" in output and "4 seals, 7 sealed rows" in output


def test_a_row_changed_by_a_superuser_is_named(audited: Session, superuser: Engine) -> None:
    row = _one(audited, "SELECT id FROM audit_log WHERE operation = 'UPDATE' LIMIT 1")
    tamper(
        superuser,
        "UPDATE audit_log SET new_values = jsonb_set(new_values, '{balance}', '99999')"
        " WHERE id = :id",
        id=row,
    )
    code, output = _verify()
    assert code == 1
    assert "BROKEN at" in output and f"row {row} in audit_log" in output
    assert "does not match its hash" in output


def test_a_row_rehashed_by_a_superuser_breaks_its_seal(audited: Session, superuser: Engine) -> None:
    """Recomputing the row's own hash is not enough: the statement's seal covers it."""
    row = _one(audited, "SELECT id FROM audit_log WHERE operation = 'UPDATE' LIMIT 1")
    tamper(
        superuser,
        "UPDATE audit_log SET user_id = 'ops.alice' WHERE id = :id;"
        "UPDATE audit_log SET row_hash = public.audit_row_hash(id, entity_type, entity_id,"
        " operation, old_values, new_values, correlation_id, user_id, service_name,"
        ' "timestamp", details, db_user, statement_id) WHERE id = :id',
        id=row,
    )
    code, output = _verify()
    assert code == 1 and "its rows' hashes do not match the seal" in output


def test_a_deleted_row_is_found(audited: Session, superuser: Engine) -> None:
    row, seq = audited.execute(
        text(
            "SELECT a.id, s.seq FROM audit_log a JOIN audit_seals s USING (statement_id)"
            " WHERE a.operation = 'INSERT' AND s.row_count = 2 LIMIT 1"
        )
    ).one()
    tamper(superuser, "DELETE FROM audit_log WHERE id = :id", id=row)
    code, output = _verify()
    assert code == 1
    assert f"seal {seq}" in output and "2 row(s) sealed, 1 found" in output


def test_a_forged_row_without_a_seal_is_found(audited: Session, superuser: Engine) -> None:
    tamper(
        superuser,
        "INSERT INTO audit_log (entity_type, operation, user_id, timestamp)"
        " VALUES ('Customer', 'GDPR_ERASE', 'ops.alice', now() AT TIME ZONE 'UTC')",
    )
    code, output = _verify()
    assert code == 1 and "has no seal but was written after the chain began" in output


def test_a_cut_tail_is_found_against_the_heads_exported_with_a_backup(
    audited: Session, superuser: Engine, tmp_path: Path
) -> None:
    """Deleting the last statement's rows and its seal leaves a consistent chain; the head
    exported beside the backup no longer matches."""
    day = _one(audited, "SELECT max(day) FROM audit_seals")
    document = audit_verify.chain_heads(audited, day, day)  # type: ignore[arg-type]
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(document))
    statement = _one(audited, "SELECT statement_id FROM audit_seals ORDER BY seq DESC LIMIT 1")
    tamper(
        superuser,
        "DELETE FROM audit_log WHERE statement_id = :s; DELETE FROM audit_seals"
        " WHERE statement_id = :s",
        s=statement,
    )
    assert _verify()[0] == 0  # the chain alone cannot tell its tail was cut
    code, output = _verify("--heads", str(heads))
    assert code == 1 and "exported head seal 4 is missing from the chain" in output


def test_a_trail_cut_to_nothing_does_not_verify_against_its_heads(
    audited: Session, superuser: Engine, tmp_path: Path
) -> None:
    """The whole trail deleted (rows and seals): the exported heads' days are still
    checked, so an empty trail is no alibi."""
    day = _one(audited, "SELECT max(day) FROM audit_seals")
    heads = tmp_path / "heads.json"
    heads.write_text(json.dumps(audit_verify.chain_heads(audited, day, day)))  # type: ignore[arg-type]
    audited.commit()
    tamper(superuser, "DELETE FROM audit_log; DELETE FROM audit_seals")
    assert _verify()[0] == 0  # an empty trail, consistent in itself
    code, output = _verify("--heads", str(heads))
    assert code == 1 and "missing from the chain" in output


def test_a_gdpr_redaction_verifies_and_a_later_change_does_not(
    audited: Session, superuser: Engine
) -> None:
    row = _one(audited, "SELECT id FROM audit_log WHERE operation = 'UPDATE' LIMIT 1")
    audited.execute(
        text("SELECT public.audit_redact('audit_log', :id, '{\"x\": 1}', '{\"x\": 2}', NULL)"),
        {"id": row},
    )
    audited.commit()
    code, output = _verify()
    assert code == 0 and "1 redacted" in output
    tamper(superuser, "UPDATE audit_log SET new_values = '{\"x\": 3}' WHERE id = :id", id=row)
    assert _verify()[0] == 1


def test_concurrent_writers_do_not_wait_and_chain_in_commit_order(db: Engine) -> None:
    """An open transaction's audited statement does not hold up another's commit: the
    seal's lock is taken only at commit (a lock_timeout would fail the second one)."""
    with db.connect() as first:
        first.begin()
        first.execute(
            text("INSERT INTO customers (account_number, first_name, last_name) VALUES"
                 " ('C1', 'a', 'b')")
        )  # fmt: skip
        done = threading.Event()

        def second() -> None:
            with db.begin() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                conn.execute(
                    text("INSERT INTO customers (account_number, first_name, last_name)"
                         " VALUES ('C2', 'a', 'b')")
                )  # fmt: skip
            done.set()

        worker = threading.Thread(target=second)
        worker.start()
        worker.join()
        assert done.is_set()
        first.commit()
    with db.connect() as conn:
        seqs = conn.execute(text("SELECT seq FROM audit_seals ORDER BY seq")).scalars().all()
        assert seqs == [1, 2]
        # The second transaction committed first: it holds seal 1.
        owner = conn.execute(
            text(
                "SELECT a.new_values ->> 'account_number' FROM audit_seals s"
                " JOIN audit_log a USING (statement_id) WHERE s.seq = 1"
            )
        ).scalar_one()
        assert owner == "C2"
    assert _verify()[0] == 0


@pytest.mark.parametrize("bad", ["2026-13-01", "yesterday"])
def test_a_bad_date_is_an_operator_error(db: Engine, bad: str) -> None:
    code, output = _verify("--from", bad)
    assert code == 2 and "not a date" in output


def _age_the_trail(superuser: Engine, days: int) -> None:
    """Move every sealed row ``days`` back, as if written then: rows, hashes and each day's
    seal chain recomputed by the superuser (the tests cannot set the server's clock)."""
    tamper(
        superuser,
        "SET LOCAL \"DateStyle\" = 'ISO, YMD'; "
        f'UPDATE audit_log SET "timestamp" = "timestamp" - interval \'{days} days\' '
        "WHERE statement_id IS NOT NULL; "
        "UPDATE audit_log SET row_hash = public.audit_row_hash(id, entity_type, entity_id, "
        "operation, old_values, new_values, correlation_id, user_id, service_name, "
        '"timestamp", details, db_user, statement_id) WHERE statement_id IS NOT NULL; '
        "DELETE FROM audit_seals",
    )
    with superuser.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        statements = conn.execute(
            text(
                'SELECT statement_id, min("timestamp")::date AS day, count(*) AS n, '
                "sha256(string_agg(row_hash, ''::bytea ORDER BY id)) AS digest "
                "FROM audit_log WHERE statement_id IS NOT NULL "
                "GROUP BY statement_id ORDER BY statement_id"
            )
        ).all()
        last: dict[object, tuple[int, bytes]] = {}
        for sid, day, n, digest in statements:
            seq, prev = last.get(day, (0, audit_verify.genesis(day)))
            seal = audit_verify.seal_of(prev, seq + 1, bytes(digest))
            conn.execute(
                text(
                    "INSERT INTO audit_seals (day, seq, statement_id, row_count, digest, "
                    "prev_seal, seal, db_user) VALUES (:d, :q, :s, :n, :g, :p, :x, 'test')"
                ),
                {"d": day, "q": seq + 1, "s": sid, "n": n, "g": bytes(digest), "p": prev,
                 "x": seal},
            )  # fmt: skip
            last[day] = (seq + 1, seal)


def test_retention_retires_audit_months_without_breaking_the_chain(
    audited: Session, superuser: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    database_url: str,
) -> None:  # fmt: skip
    """A sealed month past the audit horizon leaves for cold storage (checked against its
    seals first) and its partition is dropped: `audit verify` still passes, by the seals
    alone or, with --cold, against the cold files; a cold file rewritten with other
    hashes is found."""
    from datetime import date, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from app.config import get_settings
    from app.db.session import session_scope
    from app.maintenance import cold_storage, retention
    from app.maintenance.cold_storage import Unit
    from app.maintenance.cold_store import ColdStore
    from app.months import Month
    from tests.conftest import ensure_test_partitions

    _age_the_trail(superuser, 800)
    assert _verify()[0] == 0
    old = _one(audited, 'SELECT min("timestamp")::date FROM audit_log')
    assert isinstance(old, date)
    month = Month.of(old)
    audited.rollback()  # no snapshot of ours may hold the partitions the run detaches
    store = ColdStore(str(tmp_path / "cold"))
    policy = retention.Policy(hot_days=3650, events_days=3650, cold_dir=tmp_path / "cold")
    try:
        result = retention.run(
            session_scope, policy=policy, store=store, triggered_by="test",
            today_local=date.today(), now_utc=datetime.now(),
        )  # fmt: skip
        assert f"audit_log_p{month.year:04d}{month.month:02d}" in result.dropped
        before = f"SELECT count(*) FROM audit_log WHERE \"timestamp\" < '{month.next_first}'"
        assert _one(audited, before) == 0
        retired = (
            "SELECT count(*) FROM pn_retired_partitions WHERE table_name = 'audit_log' "
            "AND row_count > 0"
        )
        assert _one(audited, retired) == 1

        code, output = _verify()
        assert code == 0, output
        assert "4 by their links only" in output  # the aged statements
        monkeypatch.setenv("COLD_STORAGE_DIR", str(tmp_path / "cold"))
        get_settings.cache_clear()
        code, output = _verify("--cold")
        assert code == 0, output
        assert "4 seals checked against their files" in output

        # A cold file rewritten with one hash changed (its manifest updated to match).
        unit = Unit("audit_log", month)
        manifest = cold_storage.read_manifest(store, unit)
        assert manifest is not None
        table = cold_storage.read_set(store, unit, manifest)
        hashes = table.column("row_hash").to_pylist()
        hashes[0] = "\\x" + "00" * 32
        forged = table.set_column(
            table.schema.get_field_index("row_hash"), "row_hash", pa.array(hashes, pa.string())
        )
        entry = cold_storage.store_file(
            store, unit, lambda p: cold_storage.table_to_parquet(forged, p), run_id="forger"
        )
        cold_storage.write_manifest(store, unit, [entry], forged.schema, years=10)
        code, output = _verify("--cold")
        assert code == 1 and "do not match the seal" in output
        with store.open(f"{unit.prefix}/{entry['file']}") as fh:  # age ciphertext on disk
            assert pq.read_table(fh).num_rows == 7
        # An expired set (deleted by the retention run after 10 years): its days are
        # checked by their seals' links only, and verify says so.
        expired = cold_storage.read_manifest(store, unit)
        assert expired is not None
        cold_storage.remove_set(store, unit, expired)
        code, output = _verify("--cold")
        assert code == 0 and "4 by their links only" in output, output
    finally:
        get_settings.cache_clear()
        audited.rollback()
        ensure_test_partitions(database_url)
