"""The live monitoring check's perimeter, as compose's: PostgreSQL and Redis over TLS only.

compose (docker/compose.yaml, docker/secrets/README.md) runs both servers TLS-only with
certificates from one CA (``tls_ca``), Redis with one ACL user per role
(docker/redis/start.sh), and gives every client its URL or password as a secret file.
The check does the same on 127.0.0.1, under the same secret file names in its own
``secrets/`` folder:

* ``write_secrets``: a throwaway CA and the two servers' certificates (openssl; SAN
  ``IP:127.0.0.1`` beside compose's DNS names), the passwords, the broker signing key, the
  clients' URLs (``sslmode=verify-full``, ``rediss://`` with the CA) and
  redis_exporter's password map;
* ``postgres_tls_settings``: compose's ``-c ssl*`` and ``hba_file`` settings of the
  postgres service, its paths mapped here (the key copied private, as pn-entrypoint.sh
  does; docker/postgres/pg_hba.conf itself);
* ``TlsRedis``: compose's redis command (docker/redis/start.sh with the TLS arguments)
  on a free port, the ACL passwords from the secrets folder.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import yaml

COMPOSE = _common.ROOT / "docker" / "compose.yaml"
SECRETS = "/run/secrets/"
# Subject alternative names: compose's service name, and the loopback address the check
# connects to (verify-full checks it).
SANS = {"postgres": "DNS:postgres,DNS:localhost,IP:127.0.0.1",
        "redis": "DNS:redis,DNS:localhost,IP:127.0.0.1"}  # fmt: skip
REDIS_ROLES = ("worker", "scheduler", "exporter")
DATABASE, DB_USER = "premium_notify", "premium_notify"  # as compose names them


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"][name]
    return service


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """``tls_ca`` and, per server, ``<server>_tls_cert``/``<server>_tls_key`` (2 days)."""
    work = folder / ".ca"
    work.mkdir(mode=0o700, exist_ok=True)
    ca_key = work / "ca.key"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=pn-monitoring-check-ca", "-keyout", str(ca_key),
             "-out", str(folder / "tls_ca"))  # fmt: skip
    for server, san in SANS.items():
        key, cert, csr = folder / f"{server}_tls_key", folder / f"{server}_tls_cert", work / server
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={server}",
                 "-keyout", str(key), "-out", str(csr))  # fmt: skip
        ext = work / f"{server}.ext"
        ext.write_text(f"subjectAltName={san}\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(folder / "tls_ca"),
                 "-CAkey", str(ca_key), "-CAserial", str(work / "serial"), "-CAcreateserial",
                 "-days", "2",
                 "-extfile", str(ext), "-out", str(cert))  # fmt: skip
        key.chmod(0o600)
    shutil.rmtree(work)  # the CA's key: nothing signs anything else


def write_secrets(folder: Path, pg_port: int, redis_port: int) -> None:
    """Every secret file the servers, the exporters and the application read."""
    make_certificates(folder)
    ca = folder / "tls_ca"

    def write(name: str, value: str) -> str:
        path = folder / name
        path.write_text(value + "\n")
        path.chmod(0o600)
        return value

    db_password = write("postgres_password", secrets.token_hex(24))
    write("database_url", f"postgresql://{DB_USER}:{db_password}@127.0.0.1:{pg_port}/"
                          f"{DATABASE}?sslmode=verify-full&sslrootcert={ca}")  # fmt: skip
    passwords = {role: write(f"redis_{role}_password", secrets.token_hex(32))
                 for role in REDIS_ROLES}  # fmt: skip
    for role in ("worker", "scheduler"):
        write(f"redis_url_{role}", f"rediss://{role}:{passwords[role]}@127.0.0.1:{redis_port}"
                                   f"/0?ssl_ca_certs={ca}&ssl_cert_reqs=required")  # fmt: skip
    # redis_exporter's format: the address it scrapes -> the password.
    write("redis_exporter_password_map",
          json.dumps({f"rediss://127.0.0.1:{redis_port}": passwords["exporter"]}))  # fmt: skip
    write("broker_signing_key", secrets.token_hex(32))
    # The postgres exporter's own login (compose: DATA_SOURCE_PASS_FILE=exporter_password).
    write("exporter_password", secrets.token_hex(24))


def local_path(value: str, secrets_dir: Path, mounts: dict[str, Path] | None = None) -> str:
    """``value`` with compose's secret paths (anywhere in it) and mounts mapped here."""
    value = value.replace(SECRETS, f"{secrets_dir}/")
    for target, source in (mounts or {}).items():
        if value == target or value.startswith(target + "/"):
            value = str(source) + value[len(target) :]
    return value


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """The service's bind mounts of repository files: container path -> repository path."""
    found = {}
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            found[target] = (COMPOSE.parent / source).resolve()
    return found


def postgres_tls_settings(
    secrets_dir: Path, private: Path, owner: Callable[[Path], None]
) -> dict[str, str]:
    """compose's TLS and client-authentication settings of the postgres service, for a
    cluster here. ``private``: a folder for the key's private copy and the hba file, which
    ``owner(path)`` gives to the server's OS user."""
    service = compose_service("postgres")
    command = [str(arg) for arg in service["command"]]
    wanted = {}
    for flag, setting in zip(command, command[1:], strict=False):
        name, _, value = setting.partition("=")
        if flag == "-c" and (name.startswith("ssl") or name == "hba_file"):
            wanted[name] = value
    # pn-entrypoint.sh: the key (POSTGRES_TLS_KEY_FILE) copied where the server accepts it,
    # its own and 0600.
    private.mkdir(mode=0o700, exist_ok=True)
    owner(private)
    key = private / "server.key"
    shutil.copyfile(local_path(service["environment"]["POSTGRES_TLS_KEY_FILE"], secrets_dir), key)
    key.chmod(0o600)
    owner(key)
    mounts = _mounts(service)
    settings = {}
    for name, value in wanted.items():
        if name == "ssl_key_file":
            settings[name] = str(key)
        elif name == "hba_file":
            hba = private / "pg_hba.conf"
            shutil.copyfile(local_path(value, secrets_dir, mounts), hba)
            owner(hba)
            settings[name] = str(hba)
        else:
            settings[name] = local_path(value, secrets_dir, mounts)
    return settings


class TlsRedis:
    """compose's redis: docker/redis/start.sh with its TLS arguments, on a free port."""

    def __init__(self, workdir: Path, secrets_dir: Path) -> None:
        self.port = _common.free_port()
        self.dir = workdir / "redis"
        self.secrets = secrets_dir
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        service = compose_service("redis")
        mounts, argv = _mounts(service), []
        command = [str(arg) for arg in service["command"]]
        for previous, arg in zip(["", *command], command, strict=False):
            argv.append(str(self.port) if previous == "--tls-port" else
                        local_path(arg, self.secrets, mounts))  # fmt: skip
        # Here only: loopback, its own folder and log.
        return [*argv, "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--logfile", str(self.dir / "redis.log"), "--save", ""]  # fmt: skip

    def start(self) -> None:
        self.dir.mkdir(mode=0o700, exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "REDIS_SECRETS_DIR": str(self.secrets),
               "REDIS_ACL_FILE": str(self.dir / "users.acl")}  # fmt: skip
        self.proc = subprocess.Popen(self.argv(), env=env, cwd=self.dir)
        _common.wait_for_port(self.port, 10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
