"""Transport guards: compose runs PostgreSQL and Redis with TLS only, every client verifies
them, secrets come from files, and production refuses the core-banking API over http.

(The TLS servers themselves are exercised in test_security_redis.py, a redis-server with
compose's start script, and tests/maintenance/test_backup_tls.py, a PostgreSQL that takes
client certificates only.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _services() -> dict[str, Any]:
    return dict(_compose()["services"])


def _option(command: list[str], name: str) -> str | None:
    pairs = [c.split("=", 1) for c in command if "=" in c]
    return dict(pairs).get(name)  # type: ignore[arg-type]


def test_postgres_accepts_tls_only() -> None:
    command = [str(c) for c in _services()["postgres"]["command"]]
    assert _option(command, "ssl") == "on"
    assert _option(command, "ssl_min_protocol_version") == "TLSv1.2"
    assert (_option(command, "ssl_cert_file") or "").startswith("/run/secrets/")
    assert _option(command, "hba_file") == "/etc/postgresql/pn/pg_hba.conf"
    rules = [
        line.split() for line in (DOCKER / "postgres" / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    tcp = [r for r in rules if r[0] != "local"]
    assert tcp[-1][0] == "hostnossl" and tcp[-1][-1] == "reject"
    assert {r[0] for r in tcp} == {"hostssl", "hostnossl"}  # no plain 'host' line
    assert all(r[-1] in ("scram-sha-256", "cert", "reject") for r in tcp)


def test_redis_accepts_tls_only_with_acl_users() -> None:
    redis = _services()["redis"]
    command = [str(c) for c in redis["command"]]
    assert command[command.index("--port") + 1] == "0"  # no plaintext port
    assert "--tls-port" in command and "--tls-cert-file" in command
    start = (DOCKER / "redis" / "start.sh").read_text()
    assert "user default off" in start
    assert "redis-cli" in redis["healthcheck"]["test"] and "--tls" in redis["healthcheck"]["test"]


def _environments() -> dict[str, dict[str, str]]:
    out = {}
    for name, service in _services().items():
        env = service.get("environment") or {}
        out[name] = {k: "" if v is None else str(v) for k, v in env.items()}
    return out


def test_clients_verify_the_servers_and_read_urls_from_secrets() -> None:
    text = (DOCKER / "compose.yaml").read_text() + (DOCKER / "secrets" / "README.md").read_text()
    assert "sslmode=disable" not in text and "sslmode=require" not in text
    assert not re.search(r"\bredis://", text), "a plaintext Redis URL"
    for service, env in _environments().items():
        assert "REDIS_URL" not in env and "DATABASE_URL" not in env, service  # only *_FILE
        if env.get("REDIS_ADDR"):
            assert env["REDIS_ADDR"].startswith("rediss://")
    readme = (DOCKER / "secrets" / "README.md").read_text()
    assert "sslmode=verify-full" in readme and "ssl_cert_reqs=required" in readme


def test_every_secret_file_a_service_reads_is_mounted() -> None:
    declared = set(_compose()["secrets"])
    readme = (DOCKER / "secrets" / "README.md").read_text()
    for name in declared:
        assert f"`{name}`" in readme, f"secret {name} is not described in docker/secrets/"
    for service, env in _environments().items():
        mounted = set(_services()[service].get("secrets") or [])
        if service in ("core-banking-sim", "carrier-sim"):
            continue  # the simulators read no settings that need them
        for key, value in env.items():
            if key.endswith("_FILE") and value.startswith("/run/secrets/"):
                assert value.removeprefix("/run/secrets/") in mounted, (service, key)
            for name in re.findall(r"/run/secrets/(\w+)", value):  # inside a URI too
                assert name in mounted, (service, key, name)
        # CA paths live in the URL secrets; postgres_exporter has no URL secret (it reads
        # no DATA_SOURCE_NAME_FILE): its CA is in DATA_SOURCE_URI, which holds no password.
        plain = " ".join(v for k, v in env.items() if k != "DATA_SOURCE_URI")
        for key in ("sslrootcert", "ssl_ca_certs"):
            assert key not in plain, service


def test_core_banking_url_has_no_default_and_production_refuses_http() -> None:
    env = _environments()["worker"]
    assert env["CORE_BANKING_URL"] == "${CORE_BANKING_URL:-}"
    assert "core-banking-sim" not in env["CORE_BANKING_URL"]
    probe = "from app.config import get_settings; print(get_settings().core_banking_url)"
    base = {"PATH": "/usr/bin:/bin", "DRAMATIQ_BROKER": "stub"}
    refused = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "status"],
        env={**base, "ENVIRONMENT": "production", "CORE_BANKING_URL": "http://cb:8081"},
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: invalid setting CORE_BANKING_URL: must be https:// in production (a bearer token)"
    ]
    for environment, url, expected in (
        ("development", "http://core-banking-sim:8081", "http://core-banking-sim:8081"),
        ("production", "https://cb.bank.internal", "https://cb.bank.internal"),
        ("production", "", "None"),  # compose's empty ${CORE_BANKING_URL:-}: unset
    ):
        ok = subprocess.run(
            [sys.executable, "-c", probe],
            env={**base, "ENVIRONMENT": environment, "CORE_BANKING_URL": url},
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert ok.returncode == 0 and ok.stdout.strip() == expected, ok.stderr


def test_metrics_listen_on_loopback_unless_compose_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.config import Settings

    monkeypatch.delenv("METRICS_HOST", raising=False)
    assert Settings().metrics_host == "127.0.0.1"
    assert _compose()["x-app"]["environment"]["METRICS_HOST"] == "0.0.0.0"
