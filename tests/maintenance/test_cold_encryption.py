"""Cold storage at rest (issue 17 point 4, issue 21): a local folder holds age ciphertext,
checked against its recorded SHA-256 before anything is decrypted."""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from app.config import ConfigError, Settings
from app.maintenance import archive_query, cold_crypt, cold_storage
from app.maintenance.cold_storage import Unit
from app.maintenance.cold_store import ColdStore
from app.months import Month
from tests.support.backup import isolated_backup_env

PHONE = "+972541234567"
NAME = "Ilanit Ben-David"
UNIT = Unit("notifications", Month(2025, 9))


@pytest.fixture
def keys_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from isolated_backup_env(tmp_path, monkeypatch)


def _table() -> pa.Table:
    return pa.table(
        {
            "id": ["n-1", "n-2"],
            "customer_id": ["c-1", "c-1"],
            "message_body": [f"Dear {NAME}", "hello"],
            "phone_number": [PHONE, PHONE],
            "created": [date(2025, 9, 1), date(2025, 9, 2)],
        }
    )


def _write_set(store: ColdStore) -> dict[str, object]:
    table = _table()
    entry = cold_storage.store_file(
        store, UNIT, lambda p: cold_storage.table_to_parquet(table, p), run_id="r1"
    )
    cold_storage.write_manifest(store, UNIT, [entry], table.schema, years=7)
    return entry


def test_local_objects_are_ciphertext_private_and_read_back(keys_env: Path) -> None:
    store = ColdStore(str(keys_env / "cold"))
    entry = _write_set(store)
    folder = keys_env / "cold" / UNIT.prefix
    part = folder / str(entry["file"])
    for path in (part, folder / "manifest.json"):
        body = path.read_bytes()
        assert body.startswith(cold_crypt.AGE_HEADER)
        assert PHONE.encode() not in body and NAME.encode() not in body
        assert b"PAR1" not in body[:4] + body[-4:]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(pa.ArrowInvalid):
        pq.read_table(part)  # not Parquet without the key
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    # The recorded checksum is the ciphertext's: sha256sum -c works without the key.
    digest = hashlib.sha256(part.read_bytes()).hexdigest()
    assert entry["sha256"] == digest
    assert (folder / "SHA256SUMS").read_text() == f"{digest}  {entry['file']}\n"
    # Reading is transparent.
    manifest = cold_storage.read_manifest(store, UNIT)
    assert manifest is not None and manifest["rows"] == 2
    assert cold_storage.verify_set(store, UNIT) == []
    with store.open(f"{UNIT.prefix}/{entry['file']}") as fh:
        assert pq.read_table(fh).column("phone_number").to_pylist() == [PHONE, PHONE]
    assert not list(folder.glob("*.partial"))


def test_a_tampered_ciphertext_is_refused_before_decryption(
    keys_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ColdStore(str(keys_env / "cold"))
    entry = _write_set(store)
    part = keys_env / "cold" / UNIT.prefix / str(entry["file"])
    body = bytearray(part.read_bytes())
    body[len(body) // 2] ^= 0x01
    part.write_bytes(bytes(body))

    decrypt = cold_crypt.decrypt_to_temp

    def not_the_part(source: Path, identity: Path, *, name: str) -> IO[bytes]:
        assert not name.endswith(".parquet"), "decrypted a ciphertext that failed its checksum"
        return decrypt(source, identity, name=name)  # the manifest, intact

    monkeypatch.setattr(cold_crypt, "decrypt_to_temp", not_the_part)
    relative = f"{UNIT.prefix}/{entry['file']}"
    for read in (
        lambda: store.open(relative),  # checksum from the folder's SHA256SUMS
        lambda: store.open(relative, str(entry["sha256"])),
    ):
        with pytest.raises(cold_crypt.IntegrityError, match="checksum mismatch") as caught:
            read()
        assert "\n" not in str(caught.value) and "not decrypted" in str(caught.value)
    with pytest.raises(archive_query.QueryError, match="checksum mismatch") as refused:
        archive_query.run(store, "SELECT count(*) FROM notifications")
    assert "\n" not in str(refused.value)
    assert [p.split(": ")[1] for p in cold_storage.verify_set(store, UNIT)] == ["checksum mismatch"]


def test_a_plaintext_object_in_an_encrypted_folder_is_refused(keys_env: Path) -> None:
    store = ColdStore(str(keys_env / "cold"))
    _write_set(store)
    (keys_env / "cold" / UNIT.manifest).write_bytes(b'{"files": []}')
    with pytest.raises(cold_crypt.IntegrityError, match="not age-encrypted"):
        cold_storage.read_manifest(store, UNIT)


def test_archive_query_decrypts_into_a_private_folder_removed_afterwards(
    keys_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ColdStore(str(keys_env / "cold"))
    _write_set(store)
    seen: list[Path] = []
    readable = ColdStore.readable

    def spy(self: ColdStore, items: Sequence[tuple[str, str | None]]):  # type: ignore[no-untyped-def]
        with readable(self, items) as (filesystem, paths):
            folder = Path(paths[0]).parent
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert all(stat.S_IMODE(Path(p).stat().st_mode) == 0o600 for p in paths)
            seen.append(folder)
            yield filesystem, paths

    from contextlib import contextmanager

    monkeypatch.setattr(ColdStore, "readable", contextmanager(spy))
    columns, rows = archive_query.run(
        store, "SELECT count(*) AS n FROM notifications WHERE phone_number = '+972541234567'"
    )
    assert (columns, rows) == (["n"], [(2,)])
    assert seen and not seen[0].exists()


def test_production_without_keys_is_a_configuration_error(
    keys_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Settings, "is_production", lambda self: True)
    store = ColdStore(str(keys_env / "cold"))
    with pytest.raises(ConfigError, match="BACKUP_AGE_RECIPIENTS_FILE") as caught:
        _write_set(store)
    assert "\n" not in str(caught.value)
    assert not list((keys_env / "cold").rglob("*.parquet"))  # nothing written in clear


def test_development_makes_a_key_pair_on_first_use(keys_env: Path) -> None:
    store = ColdStore(str(keys_env / "cold"))
    _write_set(store)
    assert (keys_env / "keys" / "recipients.txt").exists()
    assert stat.S_IMODE((keys_env / "keys" / "identity.txt").stat().st_mode) == 0o600


def test_object_stores_are_left_to_server_side_encryption() -> None:
    store = ColdStore("memory://pn-cold-test")
    store.write_bytes("t/2025/09/x.bin", PHONE.encode())
    assert not store.encrypted
    assert store.read_bytes("t/2025/09/x.bin") == PHONE.encode()
