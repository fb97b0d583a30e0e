"""Integration: the day through Dramatiq workers (stub broker in-process, and a real
Redis broker with two ``dramatiq`` worker processes sharing the core-banking limit)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.config import PROJECT_ROOT
from app.devtools.simulators.core_banking import CoreBankingThread
from tests.balances.helpers import DAY, checks_by_account, make_customers
from tests.support.db import count


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stub_broker_worker_runs_the_day(session: Session, core_banking: CoreBankingThread) -> None:
    from dramatiq import Worker

    from worker.actors.balances import start_day
    from worker.tasks import broker

    customers = make_customers(session, 25)
    broker.flush_all()
    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        start_day.send(DAY.isoformat(), 4, "http")
        broker.join("balances", timeout=30_000)
        worker.join()
    finally:
        worker.stop()
    assert set(checks_by_account(session)) == {c.account_number for c in customers}
    assert count(session, "SELECT count(*) FROM job_runs WHERE status = 'Finished'") == 1
    assert count(session, "SELECT count(*) FROM job_shards WHERE status = 'Finished'") == 4


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (REDIS_URL)")
def test_two_worker_processes_with_redis_share_the_rate_limit(
    session: Session, core_banking: CoreBankingThread, redis_client: object, tmp_path: Path
) -> None:
    import redis
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from worker.signing import sign  # the workers refuse unsigned messages

    rps = 4
    customers = make_customers(session, 48)  # 16 requests of 3 at 4/s: about 4 s
    env = {
        **os.environ,
        "DRAMATIQ_BROKER": "redis",
        "CORE_BANKING_URL": core_banking.base_url,
        "CORE_BANKING_RPS": str(rps),
        "CORE_BANKING_BATCH_SIZE": "3",
        "BALANCE_BATCH_SIZE": "6",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "METRICS_PORT": str(_free_port()),
    }
    dramatiq_bin = str(Path(sys.executable).with_name("dramatiq"))
    workers = [
        subprocess.Popen(
            [dramatiq_bin, "worker.tasks", "--processes", "1", "--threads", "2",
             "--queues", "balances"],
            cwd=PROJECT_ROOT, env={**env, "METRICS_PORT": str(_free_port())},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        broker = RedisBroker(client=redis.Redis.from_url(os.environ["REDIS_URL"]))
        broker.enqueue(
            sign(Message(queue_name="balances", actor_name="balances.start_day",
                         args=(DAY.isoformat(), 4, "http"), kwargs={}, options={}))
        )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if count(session, "SELECT count(*) FROM job_runs WHERE status = 'Finished'"):
                break
            time.sleep(0.3)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    assert set(checks_by_account(session)) == {c.account_number for c in customers}
    assert count(session, "SELECT count(*) FROM daily_balance_checks") == 48
    assert count(session, "SELECT count(*) FROM job_runs WHERE status = 'Finished'") == 1
    answered = sorted(core_banking.simulator.answered_at)
    assert len(answered) >= 16  # shards split batches unevenly: a few more
    # Dramatiq's window limiter counts per wall-clock second across both processes; the
    # server sees a request a little after its grant, so allow one of jitter per window.
    per_second = Counter(int(t) for t in answered)
    assert max(per_second.values()) <= rps + 1
    assert answered[-1] - answered[0] >= len(answered) / rps - 2  # it really was paced
