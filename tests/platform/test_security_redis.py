"""The broker's Redis as compose runs it: TLS only, default user off, one ACL user per role.

The test starts a ``redis-server`` of its own through compose's own start script
(docker/redis/start.sh) with a throwaway CA, then shows that only ``rediss://`` with the
CA and a role's password gets in, that each role reaches only its keys, and that a real
worker and the operator's dead-letter tools work end to end over it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT, get_settings
from tests.support.observability import free_port, stop, subprocess_env
from tests.support.tls import make_certificates

START = PROJECT_ROOT / "docker" / "redis" / "start.sh"
PASSWORDS = {"worker": "a1" * 16, "scheduler": "b2" * 16, "exporter": "c3" * 16}

pytestmark = [
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl"),
]


class TlsRedis:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.ca = root / "ca.crt"

    def url(self, user: str | None, *, scheme: str = "rediss", ca: bool = True) -> str:
        auth = f"{user}:{PASSWORDS[user]}@" if user else ""
        query = f"?ssl_ca_certs={self.ca}&ssl_cert_reqs=required" if ca else ""
        return f"{scheme}://{auth}localhost:{self.port}/0{query}"


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[TlsRedis]:
    make_certificates(tmp_path, {"redis": "DNS:localhost,IP:127.0.0.1"})
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for role, password in PASSWORDS.items():
        (secrets / f"redis_{role}_password").write_text(password + "\n")
    port = free_port()
    proc = subprocess.Popen(
        ["sh", str(START), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(tmp_path / "redis.crt"),
         "--tls-key-file", str(tmp_path / "redis.key"),
         "--tls-ca-cert-file", str(tmp_path / "ca.crt"), "--tls-auth-clients", "no",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        env={**os.environ, "REDIS_SECRETS_DIR": str(secrets),
             "REDIS_ACL_FILE": str(tmp_path / "users.acl")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    try:
        yield TlsRedis(tmp_path, port)
    finally:
        stop(proc)  # type: ignore[arg-type]


def _client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=5)


def test_only_tls_with_the_ca_and_a_password_gets_in(tls_redis: TlsRedis) -> None:
    import redis

    assert (tls_redis.root / "users.acl").stat().st_mode & 0o077 == 0  # written private
    assert _client(tls_redis.url("worker")).ping()
    with pytest.raises(redis.ConnectionError):  # plaintext to the TLS port
        _client(tls_redis.url("worker", scheme="redis", ca=False)).ping()
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        _client(tls_redis.url("worker", ca=False)).ping()  # a server we cannot verify
    with pytest.raises(redis.AuthenticationError):  # the default user is off
        _client(tls_redis.url(None)).set("dramatiq:x", "1")
    wrong = tls_redis.url("worker").replace(PASSWORDS["worker"], "0" * 32)
    with pytest.raises(redis.AuthenticationError):
        _client(wrong).ping()


def test_each_role_reaches_only_its_keys(tls_redis: TlsRedis) -> None:
    import redis

    worker, scheduler = _client(tls_redis.url("worker")), _client(tls_redis.url("scheduler"))
    exporter = _client(tls_redis.url("exporter"))
    worker.set("pn:ratelimit:test", "1")
    worker.rpush("dramatiq:balances", "id")
    scheduler.hset("dramatiq:balances.msgs", "id", "{}")
    for denied in (
        lambda: scheduler.get("pn:ratelimit:test"),  # the scheduler has no rate limits
        lambda: worker.set("elsewhere", "1"),  # keys outside the broker's
        lambda: worker.flushall(),
        lambda: worker.config_set("appendonly", "no"),
        lambda: worker.acl_list(),
        lambda: exporter.get("pn:ratelimit:test"),  # the exporter reads no data
        lambda: exporter.set("dramatiq:x", "1"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            denied()
    assert exporter.llen("dramatiq:balances") == 1 and "redis_version" in exporter.info()
    # What the application's Lua scripts call beyond the categories: TIME (the rate
    # limiter's clock) and KEYS (Dramatiq's dispatch.lua, a dead worker's acks).
    for role in (worker, scheduler):
        assert role.eval("return redis.call('TIME')", 0)
        assert role.eval("return redis.call('KEYS', KEYS[1] .. ':__acks__.*')", 1, "dramatiq") == []
    assert exporter.execute_command("SLOWLOG", "LEN") == 0
    assert exporter.client_setname("redis_exporter")


def test_a_worker_and_the_dead_letter_tools_work_over_tls(
    tls_redis: TlsRedis, session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.maintenance import dlq
    from worker.actors.balances import start_day

    eod = tmp_path / "eod.csv"
    eod.write_text("account_number,balance,as_of_date\n", "utf-8")
    url = tls_redis.url("worker")
    client = _client(url)
    worker = subprocess.Popen(
        ["dramatiq", "worker.tasks", "--processes", "1", "--threads", "1",
         "--queues", "balances"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=subprocess_env(METRICS_PORT=str(free_port()), DRAMATIQ_BROKER="redis",
                           PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "p"), REDIS_URL=url,
                           BALANCE_SOURCE=f"file:{eod}"),
    )  # fmt: skip
    try:
        from tests.platform.test_security_broker import _body, _push

        forged = _push(client, _body(["2025-02-03"]))
        _push(client, start_day.message("2025-02-02", 1).asdict())
        deadline = time.monotonic() + 60
        while not session.scalar(
            text("SELECT count(*) FROM job_runs WHERE run_key = '2025-02-02'")
        ) or not client.zscore("dramatiq:balances.XQ", forged):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the worker over TLS: {stop(worker)[-3000:]}")  # type: ignore[arg-type]
            time.sleep(0.3)
            session.rollback()
        view = dlq.BrokerView(client, ("balances",))
        assert [d.redis_id for d in dlq.list_dead(view)] == [forged]
        assert [d.redis_id for d in dlq.purge(view, ids=[forged])] == [forged]
    finally:
        stop(worker)  # type: ignore[arg-type]
        get_settings.cache_clear()
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    try:
        from app.config import get_settings as settings

        assert settings().redis_url is not None  # rediss:// passes the settings check
    finally:
        get_settings.cache_clear()
