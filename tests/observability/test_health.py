"""/healthz, /readyz and /metrics of the workers' and the scheduler's servers, for real.

A ``premium-notify-worker`` process (dramatiq with JSON logs) and a ``periodiq``
scheduler are started against the test database; their endpoints are called over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.models.job_run import JobRun
from app.observability.exporter import make_server, start_in_thread
from app.observability.health import readiness, schema_head
from tests.support.observability import (
    free_port,
    samples,
    scrape,
    stop,
    subprocess_env,
    value,
)

ROOT = Path(__file__).resolve().parents[2]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: tuple[int, str] = (0, "")
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            last = get(port, "/readyz")
            if last[0] == 200:
                return dict(json.loads(last[1]))
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"/readyz on {port} never answered 200: {last}")


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="a real worker process needs a Redis shared across processes (set REDIS_URL)",
)
def test_worker_serves_health_readiness_metrics_and_nothing_else(
    database_url: str, redis_client: Any
) -> None:
    port = free_port()
    env = subprocess_env(DRAMATIQ_BROKER="redis", METRICS_PORT=str(port), LOG_FORMAT="json")
    command = ["premium-notify-worker", "worker.tasks", "--processes", "1", "--threads", "1",
               "--queues", "maintenance"]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        body = wait_ready(port, proc)
        health = get(port, "/healthz")
        other = get(port, "/anything")
        metrics = scrape(port, want="pn_build_info")
    finally:
        output = stop(proc)
    assert body == {
        "expected": schema_head(),
        "database": "ok",
        "schema": schema_head(),
        "redis": "ok",
        "ready": True,
    }, output
    assert health[0] == 200 and json.loads(health[1]) == {"status": "ok"}
    assert other[0] == 404
    assert value(metrics, "pn_build_info", role="worker") == 1
    # Every line, the dramatiq main process's included, is one JSON object.
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, output
    parsed = [json.loads(line) for line in lines]
    assert any(p["message"].startswith("Dramatiq") and "booting" in p["message"] for p in parsed)
    assert any(p["logger"].startswith("dramatiq.MainProcess") for p in parsed)


def test_scheduler_serves_readiness_and_job_freshness_from_job_runs(
    database_url: str, session: Session
) -> None:
    now = datetime.utcnow().replace(microsecond=0)  # job_runs timestamps: naive UTC
    session.add_all(
        [
            JobRun(job="balance_checks", run_key="d1", status="Finished",
                   started_at=now - timedelta(minutes=10), finished_at=now - timedelta(minutes=8)),
            JobRun(job="retention", run_key="r1", status="Failed",
                   started_at=now - timedelta(minutes=5), finished_at=now - timedelta(minutes=4)),
            JobRun(job="qualification", run_key="2026-11", status="Running", started_at=now),
        ]
    )  # fmt: skip
    session.commit()
    port = free_port()
    env = subprocess_env(DRAMATIQ_BROKER="stub", SCHEDULER_METRICS_PORT=str(port))
    proc = subprocess.Popen(
        ["periodiq", "worker.tasks"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = wait_ready(port, proc)
        text = scrape(port, want="pn_job_last_success_timestamp_seconds")
        missing = get(port, "/")
    finally:
        output = stop(proc)
    assert body["ready"] and body["schema"] == schema_head() and "redis" not in body, output
    epoch = (now - datetime(1970, 1, 1)).total_seconds()
    success = value(text, "pn_job_last_success_timestamp_seconds", pn_job="balance_checks")
    assert success == epoch - 480
    assert value(text, "pn_job_last_duration_seconds", pn_job="balance_checks") == 120
    failure = value(text, "pn_job_last_failure_timestamp_seconds", pn_job="retention")
    assert failure == epoch - 240
    assert value(text, "pn_job_running", pn_job="qualification") == 1
    pending = [n for (n, _) in samples(text) if n == "pn_notifications_pending"]
    assert len(pending) == 6  # every (state, age) pair, 0 here
    # No sample carries a "job" label of its own (Prometheus' scrape job owns that name).
    assert not re.search(r'[{,]job="', text)
    assert missing[0] == 404


def test_readyz_is_503_when_the_database_or_redis_is_unreachable(database_url: str) -> None:
    @contextmanager
    def broken() -> Iterator[Session]:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        yield  # pragma: no cover

    def no_redis() -> None:
        raise ConnectionError("refused")

    from app.db.session import session_scope

    servers = [
        make_server("127.0.0.1", 0, CollectorRegistry(), readiness(broken)),
        make_server("127.0.0.1", 0, CollectorRegistry(), readiness(session_scope, no_redis)),
    ]
    try:
        answers = []
        for server in servers:
            start_in_thread(server)
            port = server.server_address[1]
            answers.append((get(port, "/readyz"), get(port, "/healthz")))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    (db_down, alive1), (redis_down, alive2) = answers
    assert db_down[0] == 503 and json.loads(db_down[1])["database"] == "OperationalError"
    assert redis_down[0] == 503 and json.loads(redis_down[1])["redis"] == "ConnectionError"
    assert json.loads(redis_down[1])["database"] == "ok"
    assert alive1[0] == alive2[0] == 200


def test_premium_notify_worker_refuses_a_bad_setting_with_one_line(tmp_path: Path) -> None:
    env = subprocess_env(SMS_SEND_WINDOW="whenever", DRAMATIQ_BROKER="stub",
                         PROMETHEUS_MULTIPROC_DIR=str(tmp_path))  # fmt: skip
    done = subprocess.run(
        ["premium-notify-worker", "worker.tasks", "--processes", "1", "--threads", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().startswith("error: invalid setting SMS_SEND_WINDOW: ")
