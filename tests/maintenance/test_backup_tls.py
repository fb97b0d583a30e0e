"""Exports and restores keep every TLS parameter of DATABASE_URL.

A PostgreSQL 15 cluster of the test's own that accepts TLS connections with a client
certificate only (``hostssl ... cert``; no plain ``host`` line): pg_dump and pg_restore
get in only if ``sslcert`` and ``sslkey`` reach them, and ``sslmode=verify-full`` with
``sslrootcert`` makes them check the server against the test's CA. The server's log shows
the tools' own connections, each with TLS.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from pg_clusters import PG15_BIN, Pg15  # noqa: E402

from app.maintenance import backup  # noqa: E402
from app.maintenance.pgconn import Conn  # noqa: E402
from tests.support.backup import isolated_backup_env  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not (PG15_BIN / "postgres").exists(), reason="needs PostgreSQL 15"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]


@pytest.fixture
def backup_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from isolated_backup_env(tmp_path, monkeypatch)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate for postgres."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=pn-ca",
             "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"))
    for name, cn, ext in (("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1"),
                          ("client", "postgres", "")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.csr"))
        extfile = folder / f"{name}.ext"
        extfile.write_text(ext + "\n")
        _openssl("x509", "-req", "-in", str(folder / f"{name}.csr"), "-CA", str(folder / "ca.crt"),
                 "-CAkey", str(folder / "ca.key"), "-CAcreateserial", "-days", "2",
                 "-extfile", str(extfile), "-out", str(folder / f"{name}.crt"))
        (folder / f"{name}.key").chmod(0o600)


@pytest.fixture
def tls_cluster() -> Iterator[tuple[Pg15, Path]]:
    root = Path(tempfile.mkdtemp(prefix="pn-tls-"))
    root.chmod(0o755)
    db: Pg15 | None = None
    try:
        certs = root / "certs"
        certs.mkdir()
        _certificates(certs)
        db = Pg15(root / "db")
        server_key = root / "db" / "server.key"
        shutil.copy2(certs / "server.key", server_key)
        db.own(server_key)  # the server reads its key as itself, 0600
        db.init_with({
            "ssl": "on", "ssl_cert_file": str(certs / "server.crt"),
            "ssl_key_file": str(server_key), "ssl_ca_file": str(certs / "ca.crt"),
            "log_connections": "on",
        })
        (db.pgdata / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 cert\n")
        db.start()
        yield db, certs
    finally:
        if db is not None:
            try:
                db.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # never started
        shutil.rmtree(root, ignore_errors=True)


def test_export_and_restore_over_tls_with_a_client_certificate(
    tls_cluster: tuple[Pg15, Path], backup_env: Path
) -> None:
    db, certs = tls_cluster
    url = (
        f"postgresql+psycopg2://postgres@127.0.0.1:{db.port}/ledger?sslmode=verify-full"
        f"&sslrootcert={certs / 'ca.crt'}&sslcert={certs / 'client.crt'}"
        f"&sslkey={certs / 'client.key'}"
    )
    source = Conn.from_url(url)
    admin = source.with_database("postgres").connect()
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE ledger")
    admin.close()
    pg = source.connect()
    with pg, pg.cursor() as cur:
        cur.execute("CREATE TABLE entries AS SELECT g AS id, md5(g::text) AS memo "
                    "FROM generate_series(1, 1000) g")
    pg.close()
    without_cert = Conn.from_url(url.split("&sslcert=")[0])
    with pytest.raises(Exception, match="certificate"):  # the server insists on one
        without_cert.connect()

    dump = backup.backup(source, backup_env / "exports")
    result = backup.restore(dump, source.with_database("ledger_restored"))

    assert result["verified"] and result["tables"]["entries"]["rows"] == 1000
    log = db.log.read_text()
    for tool in ("pg_dump", "pg_restore"):
        lines = [line for line in log.splitlines()
                 if "connection authorized" in line and f"application_name={tool}" in line]
        assert lines, f"{tool} never connected"
        assert all("SSL enabled" in line for line in lines), lines
