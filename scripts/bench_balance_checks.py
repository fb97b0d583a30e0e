"""Benchmark: a day's balance checks through the Redis broker and two worker processes.

    ./scripts/bench balance-checks --customers 200000 [--shards 8] [--keep]

Needs DATABASE_URL and REDIS_URL (a real PostgreSQL and Redis). It creates and migrates
its own database (pn_bench_balances) on that server, loads N customers, then measures,
in the same run and against the same table with the same audit trigger:

1. reference: one raw ``COPY`` of N prepared check rows into daily_balance_checks;
2. the EOD-file source: ``balances.start_day`` enqueued, two ``dramatiq`` worker processes
   (2 threads each) run the shards (read the extract, find unchecked customers, COPY);
3. the core-banking source: the same, against the simulator (a separate process).

Each figure is checks per second from enqueue to the run's fan-in (finished_at), and its
ratio to the raw COPY. Targets (issue 3): EOD file >= 0.6 of raw COPY.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import cast

from _common import (
    BIN,
    ROOT,
    Connection,
    admin,
    database_url,
    drop,
    free_port,
    migrate,
    recreate,
    stop,
    wait_for_port,
)
from sqlalchemy import Engine, create_engine, text

from app.config import get_settings
from app.devtools.simulators.core_banking import balance_for

DB = "pn_bench_balances"
REF_DAY, FILE_DAY, HTTP_DAY = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def setup_database(server_url: str) -> str:
    conn = admin(server_url)
    try:
        recreate(conn, DB)
    finally:
        conn.close()
    bench_url = database_url(server_url, DB)
    migrate(bench_url)
    return bench_url


def load_customers(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (account_number, first_name, last_name, phone_number, "
                "phone_status, phone_is_valid_mobile, last_verified) "
                "SELECT 'B' || lpad(g::text, 9, '0'), 'Bench', 'Customer', "
                "'+97250' || lpad(g::text, 7, '0'), 'MOBILE', true, LOCALTIMESTAMP "
                "FROM generate_series(1, :n) g"
            ),
            {"n": n},
        )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE customers"))


def write_extract(path: Path, accounts: list[str], day: date) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("account_number,balance,as_of_date,currency\n")
        iso = day.isoformat()
        handle.writelines(f"{a},{balance_for(1, a, day)},{iso},ILS\n" for a in accounts)


def raw_copy(engine: Engine, customers: list[tuple[uuid.UUID, str]]) -> float:
    corr, now = uuid.uuid4(), "2026-01-01 22:00:00"
    lines = []
    for cid, account in customers:
        bal = balance_for(1, account, REF_DAY)
        flag = "NEGATIVE_BALANCE" if bal < 0 else "\\N"
        passes = "t" if bal >= 15000 else "f"
        lines.append(f"{cid}\t{REF_DAY}\t{bal}\t15000.00\t{passes}\t{now}\t{flag}\t{corr}\n")
    buffer = io.StringIO("".join(lines))
    raw = engine.raw_connection()
    driver = cast(Connection, raw.driver_connection)  # psycopg2's, for copy_expert
    try:
        started = time.perf_counter()
        with driver.cursor() as cur:
            cur.copy_expert(
                "COPY daily_balance_checks (customer_id, check_date, balance, threshold, "
                "passes_threshold, check_timestamp, data_quality_flag, correlation_id) "
                "FROM STDIN",
                buffer,
            )
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def pipeline(
    engine: Engine, env: dict[str, str], day: date, source: str | None, shards: int
) -> float:
    dramatiq_bin = str(BIN / "dramatiq")
    workers = [
        subprocess.Popen(
            [
                dramatiq_bin,
                "worker.tasks",
                "--processes",
                "1",
                "--threads",
                "2",
                "--queues",
                "balances",
            ],
            cwd=ROOT,
            env={**env, "METRICS_PORT": str(free_port())},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        time.sleep(4)  # let both workers boot before the clock starts
        # This process enqueues through the same broker front door as the workers.
        os.environ.update(REDIS_URL=env["REDIS_URL"], DRAMATIQ_BROKER="redis")
        get_settings.cache_clear()
        from worker.actors.balances import start_day
        from worker.enqueue import enqueue

        started = time.perf_counter()
        enqueue(start_day, day.isoformat(), shards, source)
        while True:
            with engine.connect() as conn:
                done = conn.execute(
                    text("SELECT finished_at IS NOT NULL FROM job_runs WHERE run_key = :d"),
                    {"d": day.isoformat()},
                ).scalar()
            if done:
                return time.perf_counter() - started
            if any(w.poll() is not None for w in workers):
                raise SystemExit("a worker died")
            time.sleep(0.05)
    finally:
        stop(*workers, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--keep", action="store_true", help="Keep the bench database.")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL and REDIS_URL (a real PostgreSQL and Redis)")
    n = args.customers
    bench_url = setup_database(os.environ["DATABASE_URL"])
    engine = create_engine(bench_url)
    print(f"loading {n} customers ...", flush=True)
    load_customers(engine, n)
    with engine.connect() as conn:
        customers = [(r[0], r[1]) for r in conn.execute(
            text("SELECT id, account_number FROM customers"))]  # fmt: skip
    tmp = Path(tempfile.mkdtemp(prefix="pn-bench-"))
    extract = tmp / "eod.csv"
    write_extract(extract, [a for _, a in customers], FILE_DAY)
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "DRAMATIQ_BROKER": "redis",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp),
        "BALANCE_BATCH_SIZE": "5000",
        "LOG_LEVEL": "WARNING",
    }
    print("reference: raw COPY ...", flush=True)
    t_ref = raw_copy(engine, customers)
    print("EOD file through the broker and two workers ...", flush=True)
    # A file source comes from the workers' settings, never from a message (worker/arguments.py).
    file_env = {**env, "BALANCE_SOURCE": f"file:{extract}"}
    t_file = pipeline(engine, file_env, FILE_DAY, None, args.shards)
    results = [("raw COPY (reference)", t_ref), ("pipeline, EOD file", t_file)]
    if not args.skip_http:
        port = free_port()
        sim = subprocess.Popen(
            [str(BIN / "premium-notify"), "simulate",
             "core-banking", "--port", str(port), "--seed", "1"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port(port, 20)
            http_env = {**env, "CORE_BANKING_URL": f"http://127.0.0.1:{port}",
                        "CORE_BANKING_RPS": "0", "CORE_BANKING_BATCH_SIZE": "1000"}  # fmt: skip
            print("core-banking simulator through the broker and two workers ...", flush=True)
            results.append(
                ("pipeline, core-banking sim", pipeline(engine, http_env, HTTP_DAY, "http",
                                                        args.shards))
            )  # fmt: skip
        finally:
            stop(sim)
    with engine.connect() as conn:
        per_day: dict[date, int] = dict(conn.execute(text(
            "SELECT check_date, count(*) FROM daily_balance_checks GROUP BY 1")).all())  # fmt: skip
    print(f"\ncustomers: {n}, shards: {args.shards}, workers: 2 processes x 2 threads")
    print(f"{'measurement':32} {'seconds':>9} {'checks/s':>10} {'ratio':>7}")
    for (label, seconds), day in zip(results, (REF_DAY, FILE_DAY, HTTP_DAY), strict=False):
        rows = per_day.get(day, 0)
        assert rows == n, f"{label}: {rows} checks, expected {n}"
        print(f"{label:32} {seconds:9.2f} {n / seconds:10.0f} {t_ref / seconds:7.2f}")
    engine.dispose()
    if not args.keep:
        server = admin(bench_url)
        drop(server, DB)
        server.close()


if __name__ == "__main__":
    main()
