"""Metrics: multiprocess exporters of workers and scheduler, queue stats, no PII in labels."""

from __future__ import annotations

import importlib
import os
import pkgutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from prometheus_client import REGISTRY, generate_latest

import app
import worker
from tests.support.observability import (
    FORBIDDEN_LABEL_NAMES,
    ROOT,
    assert_no_personal_data,
    free_port,
    promtool_check_metrics,
    scrape,
    stop,
    subprocess_env,
    value,
)
from worker.queue_stats import publish, sample
from worker.signing import sign


def _import_everything() -> None:
    for package in (app, worker):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)


def test_no_personal_data_in_any_label_of_the_whole_registry() -> None:
    _import_everything()  # every metric the system defines is registered now
    text = generate_latest(REGISTRY).decode()
    assert "pn_sms_submissions_total" in text
    assert_no_personal_data(text)
    # Label *names* too, also of metrics that have no sample yet.
    for collector in list(REGISTRY._collector_to_names):
        for name in getattr(collector, "_labelnames", ()):
            assert not FORBIDDEN_LABEL_NAMES.search(name), (
                f"{getattr(collector, '_name', collector)}: label {name!r} names personal data"
            )


def _redis_broker(client: Any) -> RedisBroker:
    broker = RedisBroker(client=client, middleware=[])
    broker.declare_queue("sms")
    return broker


def test_queue_depth_dead_letters_and_oldest_age_from_redis(redis_client: Any) -> None:
    broker = _redis_broker(redis_client)
    now_ms = int(time.time() * 1000)
    for i, age_s in enumerate((120, 60, 5)):
        broker.enqueue(
            Message(
                queue_name="sms",
                actor_name="send",
                args=(i,),
                kwargs={},
                options={},
                message_timestamp=now_ms - age_s * 1000,
            )
        )
    consumer = broker.consume("sms", prefetch=1, timeout=1000)
    first = next(consumer)
    consumer.nack(first)  # dead-lettered
    consumer.close()
    broker.enqueue(
        Message(queue_name="sms", actor_name="send", args=(9,), kwargs={}, options={}), delay=60_000
    )

    stats = {s.queue: s for s in sample(redis_client, ["sms"], now=now_ms / 1000)}
    assert stats["sms"].depth == 2
    assert stats["sms"].dead_lettered == 1
    assert stats["sms"].oldest_age_seconds == pytest.approx(60, abs=1)
    assert stats["sms.DQ"].depth == 1 and stats["sms.DQ"].oldest_age_seconds is None

    publish(stats.values())
    text = generate_latest(REGISTRY).decode()
    assert value(text, "pn_queue_depth", queue="sms") == 2
    assert value(text, "pn_dlq_messages", queue="sms") == 1
    broker.flush_all()
    stats = {s.queue: s for s in sample(redis_client, ["sms"])}
    assert stats["sms"].depth == 0 and stats["sms"].oldest_age_seconds is None


_MULTIPROCESS_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, sys
    import worker  # chooses the multiprocess directory before prometheus_client loads
    from app.observability import metrics
    from app.observability.exporter import build_registry, make_server
    from app.observability.multiprocess import current

    def child(n):
        metrics.SMS_SUBMISSIONS.labels("Submitted", "none").inc(n)
        metrics.SCHEDULER_LAST_KICK.labels("balances.kick").set(1000 + n)
        metrics.CARRIER_REQUEST_SECONDS.labels("create").observe(0.2)

    if __name__ == "__main__":
        procs = [multiprocessing.Process(target=child, args=(n,)) for n in (2, 3)]
        for p in procs: p.start()
        for p in procs: p.join()
        role, directory = current()
        server = make_server("127.0.0.1", int(sys.argv[1]), build_registry(directory))
        print("ready", role, flush=True)
        server.serve_forever()
    """
)


def test_exporter_serves_the_sum_of_several_processes_without_redis(tmp_path: Path) -> None:
    """The no-Redis variant: child processes write, the exporter serves their merged values."""
    script = tmp_path / "multiprocess_exporter.py"
    script.write_text(_MULTIPROCESS_SCRIPT)
    port = free_port()
    env = subprocess_env(PN_PROCESS_ROLE="worker", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "mp"))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        text = scrape(port, want="pn_sms_submissions_total")
    finally:
        output = stop(proc)
    assert value(text, "pn_sms_submissions_total", status="Submitted", error_code="none") == 5, (
        output
    )
    assert value(text, "pn_scheduler_last_kick_timestamp_seconds", actor="balances.kick") == 1003
    assert value(text, "pn_carrier_request_seconds_count", operation="create") == 2
    promtool_check_metrics(text)
    assert_no_personal_data(text)


def test_prometheus_client_imported_too_early_fails_loudly() -> None:
    code = (
        "import prometheus_client\n"
        "from app.observability.multiprocess import Role, configure_process\n"
        "configure_process(Role.WORKER)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "imported before PROMETHEUS_MULTIPROC_DIR" in result.stderr


def test_the_scheduler_process_serves_its_own_metrics(database_url: str) -> None:
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
        text = scrape(port, want="pn_build_info")
    finally:
        output = stop(proc)
    assert value(text, "pn_build_info", role="scheduler") == 1, output
    promtool_check_metrics(text)
    assert_no_personal_data(text)


@pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="a real dramatiq worker process needs a Redis shared across processes (set "
    "REDIS_URL); test_exporter_serves_the_sum_of_several_processes_without_redis covers "
    "the exporter without it",
)
def test_a_running_dramatiq_worker_serves_dramatiq_and_domain_metrics(
    database_url: str, redis_client: Any
) -> None:
    port = free_port()
    env = subprocess_env(DRAMATIQ_BROKER="redis", METRICS_PORT=str(port), LOG_FORMAT="json")
    proc = subprocess.Popen(
        [
            "dramatiq",
            "worker.tasks",
            "tests.platform.observability_probe",
            "--processes",
            "2",
            "--threads",
            "1",
            "--queues",
            "maintenance",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        scrape(port, want="pn_queue_depth")  # up, and sampling Redis
        broker = RedisBroker(client=redis_client, middleware=[])
        broker.declare_queue("maintenance")
        for n in (1, 2, -1):  # signed, as every producer of ours signs (worker/signing.py)
            broker.enqueue(
                sign(
                    Message(
                        queue_name="maintenance",
                        actor_name="obs_probe",
                        args=(n,),
                        kwargs={},
                        options={},
                    )
                )
            )
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            text = scrape(port)
            if value(text, "dramatiq_messages_total", actor_name="obs_probe") >= 3:
                break
            time.sleep(0.5)
    finally:
        output = stop(proc)
    assert value(text, "dramatiq_messages_total", actor_name="obs_probe") == 3, output
    assert value(text, "dramatiq_message_errors_total", actor_name="obs_probe") == 1
    assert value(text, "pn_reconciler_actions_total", reconciler="obs_probe") == 3
    assert value(text, "pn_build_info", role="worker") == 1
    assert value(text, "pn_queue_depth", queue="maintenance") == 0
    promtool_check_metrics(text)
    assert_no_personal_data(text)
    # JSON logs: the actor's line carries actor and message id, the number is masked.
    import json

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    probe = [line for line in lines if line.get("logger") == "tests.platform.observability_probe"]
    assert probe, output
    assert all(line["actor"] == "obs_probe" and line["message_id"] for line in probe)
    assert "+972501234567" not in output and "+97250***4567" in output
