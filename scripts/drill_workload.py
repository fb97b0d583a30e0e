"""What the recovery drill writes and how it checks what comes back.

* ``load_month``: a month of realistic data through the production code: the demo
  (``premium-notify demo``: customers imported, every day's balance checks, the month
  qualified, SMS sent and followed) against the drill's own cluster.
* ``Heartbeat``: a client committing one small ``system_events`` row every 0.2 s through
  the application's engine (multi-host URL, ``pool_pre_ping``), recording the moment each
  commit returned. The newest heartbeat a restored or promoted database holds tells when
  the last write it kept was committed: the recovery point, measured.
* ``Days``: real Dramatiq workers (``dramatiq worker.tasks``) writing balance-check days
  from the core-banking simulator, through Redis, as production does.
* state checks: per-table counts and checksums, the audit trail, personal-data traces.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg2
from _common import ROOT
from chaos_servers import OwnRedis, Proc, worker
from sqlalchemy import Engine, text

from app.db.session import build_engine
from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread
from app.maintenance.pgconn import Conn
from app.maintenance.repository.backup import fingerprints

BIN = Path(sys.executable).parent
HEARTBEAT = "drill.heartbeat"
# What the drill's subprocesses may inherit: nothing of the caller's servers or carrier.
KEEP_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
HEARTBEAT_SQL = text(
    "INSERT INTO system_events (event_type, severity, service_name, event_data) "
    "VALUES (:t, 'INFO', 'recovery-drill', jsonb_build_object('seq', :s))"
)
TEXT_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
    "'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
)


def clean_env(**values: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ}
    env.setdefault("HOME", "/tmp")
    env.update(values)
    return env


def load_month(url: str, customers: int, month: str, workdir: Path, env: dict[str, str]) -> None:
    """A month of data: the demo (its own in-process broker and simulators) into ``url``'s
    server, database ``premium`` created fresh and migrated."""
    argv = [str(BIN / "premium-notify"), "demo", "--customers", str(customers), "--month", month,
            "--database-name", "premium", "--workdir", str(workdir / "demo"),
            "--delivery-timeout", "20"]
    log = workdir / "demo.log"
    with log.open("wb") as out:
        done = subprocess.run(argv, cwd=ROOT, env={**env, "DATABASE_URL": url},
                              stdout=out, stderr=subprocess.STDOUT, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"loading the month failed: {log.read_text()[-2000:]}")


@dataclass
class Heartbeat:
    """Commits ``drill.heartbeat`` events; ``acked[seq]`` = when its commit returned."""

    url: str
    every: float = 0.2
    acked: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: threading.Event = field(default_factory=threading.Event)
    _idle: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        engine = build_engine(self.url, pool_size=1, max_overflow=0)
        seq = 0
        try:
            while not self._stop.is_set():
                if not self._running.is_set():
                    self._idle.set()
                    self._running.wait(0.1)
                    continue
                self._idle.clear()
                seq += 1
                try:
                    with engine.begin() as conn:
                        conn.execute(HEARTBEAT_SQL, {"t": HEARTBEAT, "s": seq})
                    self.acked[seq] = time.time()
                except Exception:  # noqa: BLE001 - the server is down or failing over
                    self.errors += 1
                time.sleep(self.every)
        finally:
            engine.dispose()

    def pause(self) -> None:
        """Stop writing and wait until no commit is in flight."""
        self._running.clear()
        self._idle.wait(10)

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(10)

    def last_acked_before(self, moment: float) -> tuple[int, float]:
        before = [(s, t) for s, t in self.acked.items() if t <= moment]
        return max(before) if before else (0, 0.0)

    def first_acked_after(self, moment: float) -> float | None:
        after = [t for t in self.acked.values() if t > moment]
        return min(after) if after else None


def newest_heartbeat(pg: Any) -> int:
    with pg.cursor() as cur:
        cur.execute(
            "SELECT coalesce(max((event_data->>'seq')::int), 0) FROM system_events "
            "WHERE event_type = %s", (HEARTBEAT,))
        row = cur.fetchone()
    return int(row[0]) if row else 0


class Days:
    """Redis, the core-banking simulator and one real worker writing balance-check days."""

    def __init__(self, url: str, workdir: Path, customers_hint: int) -> None:
        self.url = url
        self.workdir = workdir
        self.redis = OwnRedis(workdir)
        self.bank = CoreBankingThread(CoreBankingConfig(seed=7, latency=0.05))
        self.proc: Proc | None = None
        self.engine: Engine = build_engine(url, pool_size=1, max_overflow=1)
        self.batch = "200" if customers_hint > 2000 else "50"
        self.stopped = False

    def start(self) -> None:
        """Redis, the simulator, then the worker (``dramatiq worker.tasks``)."""
        self.redis.start()
        self.bank.start()
        env = clean_env(
            DATABASE_URL=self.url, REDIS_URL=self.redis.url, DRAMATIQ_BROKER="redis",
            CORE_BANKING_URL=self.bank.base_url, CORE_BANKING_BATCH_SIZE=self.batch,
            CORE_BANKING_RPS="0", BALANCE_BATCH_SIZE=self.batch, BALANCE_SHARDS="2",
            METRICS_HOST="127.0.0.1", PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "prom"),
        )
        (self.workdir / "prom").mkdir(exist_ok=True)
        self.proc = worker("drill-worker", env, self.workdir, threads=2)
        self.proc.start()

    def enqueue(self, day: date) -> None:
        import dramatiq
        import redis as redis_lib
        from dramatiq.brokers.redis import RedisBroker

        from worker.signing import sign

        client = redis_lib.Redis.from_url(self.redis.url)
        broker = RedisBroker(client=client)  # type: ignore[no-untyped-call]
        message: Any = dramatiq.Message(
            queue_name="balances",
            actor_name="balances.start_day",
            args=(day.isoformat(),),
            kwargs={},
            options={},
        )
        broker.enqueue(sign(message))  # workers refuse unsigned messages

    def count(self, day: date) -> int:
        return self._scalar("SELECT count(*) FROM daily_balance_checks WHERE check_date = :d",
                            d=day)

    def finished(self, day: date) -> bool:
        return bool(self._scalar(
            "SELECT count(*) FROM job_runs WHERE job = 'balance_checks' AND run_key = :d "
            "AND finished_at IS NOT NULL", d=day.isoformat()))

    def _scalar(self, sql: str, **params: object) -> int:
        for _ in range(100):  # across a failover a query may hit the dying primary
            try:
                with self.engine.connect() as conn:
                    return int(conn.scalar(text(sql), params) or 0)
            except Exception:  # noqa: BLE001
                time.sleep(0.2)
        raise RuntimeError("the database did not come back")

    def wait(self, day: date, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.finished(day):
            if time.monotonic() > deadline:
                log = self.proc.log.read_text()[-3000:] if self.proc else ""
                raise RuntimeError(f"day {day} not finished after {timeout:.0f} s: {log}")
            time.sleep(0.3)

    def write(self, days: list[date], timeout: float) -> None:
        for day in days:
            self.enqueue(day)
            self.wait(day, timeout)

    def stop(self) -> None:
        """Stop the worker, the simulator and Redis (once: cleanup may call it again)."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc is not None:
            self.proc.stop()
        self.bank.stop()
        self.redis.stop()
        self.engine.dispose()


def state(conn: Conn) -> dict[str, dict[str, Any]]:
    """Counts and checksums of every table (one snapshot)."""
    pg = conn.connect()
    try:
        pg.set_session(isolation_level="REPEATABLE READ", readonly=True)
        return fingerprints(pg)
    finally:
        pg.rollback()
        pg.close()


def server_now(conn: Conn) -> datetime:
    pg = conn.connect()
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT clock_timestamp()")
            row = cur.fetchone()
    finally:
        pg.close()
    assert row is not None
    return row[0].astimezone(UTC)  # type: ignore[no-any-return]


def audit_problems(pg: Any, heads: Path | None = None) -> list[str]:
    """The audit trail's invariants: one audit row per check, the append-only guard on;
    ``heads``: the chain heads recorded with the backup the database was restored from."""
    problems = []
    if pg.autocommit:
        pg.autocommit = False  # the DELETE probe below must roll back, whatever happens
    else:
        pg.rollback()
    with pg.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM daily_balance_checks b WHERE (SELECT count(*) FROM audit_log a "
            "WHERE a.entity_type = 'BalanceCheck' AND a.entity_id = b.id) <> 1")
        row = cur.fetchone()
        if row and row[0]:
            problems.append(f"{row[0]} balance checks without exactly one audit row")
        cur.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass "
                    "AND NOT tgisinternal AND tgenabled <> 'D'")
        row = cur.fetchone()
        if not row or not row[0]:
            problems.append("audit_log has no enabled trigger (append-only guard)")
        try:
            cur.execute("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log LIMIT 1)")
            problems.append("audit_log accepted a DELETE")
        except psycopg2.Error:
            pass  # refused, as it must be
        finally:
            pg.rollback()
    return problems + audit_verify_problems(pg, heads)


def audit_verify_problems(pg: Any, heads: Path | None = None) -> list[str]:
    """`premium-notify audit verify [--heads FILE]` on the database behind ``pg``: every
    row hash and every seal of the chain recomputed, the heads recorded with a backup
    found in it (docs/security.md); its verdict line if it fails."""
    info = pg.info
    if str(info.host).startswith("/"):
        url = f"postgresql://{info.user}@/{info.dbname}?host={info.host}&port={info.port}"
    else:
        url = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"
    env = {k: os.environ[k] for k in KEEP_ENV if k in os.environ} | {"DATABASE_URL": url}
    argv = [str(BIN / "premium-notify"), "audit", "verify"]
    if heads is not None:
        argv += ["--heads", str(heads)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode == 0:
        return []
    said = (done.stdout + done.stderr).strip().splitlines()
    return [f"audit verify failed (exit {done.returncode}): {said[-1] if said else ''}"]


def erased_problems(pg: Any, customer_id: str, phone: str) -> list[str]:
    """What of an anonymised customer's personal data is still anywhere."""
    problems = []
    with pg.cursor() as cur:
        cur.execute("SELECT first_name, last_name, phone_number, email, is_active, anonymised_at"
                    " FROM customers WHERE id = %s", (customer_id,))
        row = cur.fetchone()
        if row is None:
            return ["the erased customer is missing"]
        if row[:4] != ("ERASED", "ERASED", None, None) or row[4] or row[5] is None:
            problems.append("the customer row still holds personal data")
        cur.execute(
            "SELECT count(*) FROM notifications WHERE customer_id = %s AND "
            "(phone_number <> 'ERASED' OR sms_content <> '[erased]')",
            (customer_id,),
        )
        left = cur.fetchone()
        if left and left[0]:
            problems.append(f"{left[0]} notifications still hold the number or the text")
    found = traces(pg, [phone])
    if found:
        problems.append(f"the phone number is still in {found} cells")
    return problems


def customer_phone(pg: Any, account: str) -> tuple[str, str]:
    with pg.cursor() as cur:
        cur.execute("SELECT id, phone_number FROM customers WHERE account_number = %s", (account,))
        row = cur.fetchone()
    assert row is not None and row[1]
    return str(row[0]), str(row[1])


def pick_customer(pg: Any) -> str:
    """An active customer who was texted: an erasure then reaches every table."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT c.account_number FROM customers c JOIN notifications n ON n.customer_id = c.id"
            " WHERE c.is_active AND c.phone_number IS NOT NULL ORDER BY c.account_number LIMIT 1"
        )
        row = cur.fetchone()
    if row is None:
        raise RuntimeError("no texted customer to erase")
    return str(row[0])


def traces(pg: Any, values: list[str]) -> int:
    """Text/JSON cells of any table that still hold one of ``values``."""
    found = 0
    with pg.cursor() as cur:
        cur.execute(TEXT_COLUMNS)
        columns = cur.fetchall()
        for table, column in columns:
            for value in values:
                cur.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s',
                            (f"%{value}%",))
                row = cur.fetchone()
                found += int(row[0]) if row else 0
    return found
