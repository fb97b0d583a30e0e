"""Benchmark of SMS sending: ./scripts/bench notifications [--n N] [--threads T] [--mps M]

On a dedicated database (created here, dropped afterwards) with N qualified customers,
against the carrier simulator in its own process, in the same run:

  reference  the raw twilio SDK alone: T threads calling messages.create on the simulator;
  (a)        the whole pipeline with no rate limit: prepare the month's outbox (chunk by
             chunk, in another process, as the prepare_month actor does on the 'outbox'
             queue) while T threads of Sender (claim, carrier call, record) send it,
             N notifications;
             target >= 0.8 of the reference's rate;
  (b)        with SMS_MPS = M (segments/s): the achieved rate at the carrier and the most
             segments the carrier accepted in any one-second window (from its own accept
             times); target >= 0.95 of M and never above it.

The limiter of (b) is the Redis one when REDIS_URL is set, else the in-process one.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Any

import requests
from _common import (
    ROOT,
    Connection,
    admin,
    connect,
    database_url,
    drop,
    free_port,
    migrate,
    recreate,
    stop,
    wait_for_port,
)

from app.db import session as db_session

if TYPE_CHECKING:
    from app.ratelimit import RateLimiter

DB = "pn_bench_notifications"
ACCOUNT, TOKEN, SENDER = "AC" + "0" * 32, "bench-token", "+15005550006"
MONTH_A, MONTH_B = date(2026, 10, 1), date(2026, 9, 1)


def load(conn: Connection, n: int, month: date, offset: int) -> None:
    """n customers, each qualified for ``month`` (set-based; phone verdicts stored)."""
    cur = conn.cursor()
    cur.execute(
        """
        INSERT INTO customers (account_number, first_name, last_name, phone_number,
                               is_active, phone_status, phone_is_valid_mobile, last_verified)
        SELECT 'N' || lpad(g::text, 9, '0'), 'Dana', 'Levi',
               '+97252' || lpad(g::text, 7, '0'), true, 'MOBILE', true, LOCALTIMESTAMP
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        {"lo": offset + 1, "hi": offset + n},
    )
    cur.execute(
        """
        INSERT INTO monthly_qualifications (customer_id, qualification_month, qualified,
            qualifying_days, total_days_in_month, phone_number_validated, calculated_at)
        SELECT id, %(m)s, true, 30, 30, true, LOCALTIMESTAMP FROM customers
        WHERE account_number BETWEEN %(a)s AND %(b)s
        """,
        {"m": month, "a": f"N{offset + 1:09d}", "b": f"N{offset + n:09d}"},
    )


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "app.cli.main", "simulate", "carrier", "--port", str(port),
           "--account-sid", ACCOUNT, "--auth-token", TOKEN,
           "--sent-after", "0", "--delivered-after", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT)
    wait_for_port(port, 10)
    return proc


def raw_sdk_rate(base: str, n: int, threads: int) -> float:
    from app.notifications.carrier import CarrierClient

    counter = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=base, timeout=10)
        client.warm_up()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            client.send(f"+97253{i:07d}", "Dear Dana Levi, thank you for being a Premium customer.")

    t = time.perf_counter()
    run_threads(work, threads)
    return n / (time.perf_counter() - t)


def run_threads(fn: Callable[[], None], threads: int) -> None:
    pool = [threading.Thread(target=fn) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def _prepare_process(month: date, batches: Any, done: Any, seconds: Any) -> None:
    """The prepare_month actor's work, in its own process (the 'outbox' queue's worker).

    Each chunk's batches are handed to the senders right after the chunk's commit.
    """
    from app.db.session import session_scope
    from app.months import Month
    from app.notifications.outbox import prepare_streaming

    def hand_over(ids: list[uuid.UUID]) -> None:
        for batch in ids:
            batches.put(batch)

    t0 = time.perf_counter()
    try:
        prepare_streaming(session_scope, Month.of(month), hand_over, triggered_by="bench")
    finally:
        seconds.value = time.perf_counter() - t0
        done.set()


def send_month(
    base: str, month: date, threads: int, limiter: RateLimiter | None
) -> tuple[float, float, int]:
    """(prepare seconds, prepare-to-last-send seconds, submitted) for one month.

    As in production: the outbox is prepared chunk by chunk in another process (the
    prepare_month actor runs on the 'outbox' queue, not in the senders' process) and
    each chunk's batches go to the T sender threads of this process as they commit, so
    sending overlaps preparing.
    """
    from app.db.session import session_scope
    from app.notifications.carrier import CarrierClient
    from app.notifications.sending import Sender

    ctx = multiprocessing.get_context("spawn")
    work = ctx.Queue()
    prepared = ctx.Event()
    prepare_seconds = ctx.Value("d", 0.0)
    submitted = [0]
    lock = threading.Lock()

    def worker() -> None:
        client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=base, timeout=10)
        client.warm_up()
        sender = Sender(client, limiter)
        while True:
            try:
                batch = work.get(timeout=0.05)
            except queue.Empty:
                if prepared.is_set() and work.empty():
                    return
                continue
            outcome = sender.send_batch(session_scope, batch)
            with lock:
                submitted[0] += outcome.submitted
            if outcome.defer_seconds is not None:
                work.put(batch)

    t = time.perf_counter()
    producer = ctx.Process(target=_prepare_process, args=(month, work, prepared, prepare_seconds))
    producer.start()
    run_threads(worker, threads)
    producer.join()
    if producer.exitcode != 0:
        raise RuntimeError(f"the prepare process failed (exit code {producer.exitcode})")
    return prepare_seconds.value, time.perf_counter() - t, submitted[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="notifications in (a)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--mps", type=int, default=200, help="segments/s in (b)")
    parser.add_argument("--limited-seconds", type=float, default=20.0, help="length of (b)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    limited_n = int(args.mps * args.limited_seconds)

    from app.config import get_settings

    server = db_session.resolve_database_url()
    url = database_url(server, DB)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ.update({
        "DATABASE_URL": url, "SMS_SEND_WINDOW": "mon-sun 00:00-24:00", "SMS_MPS": "0",
        "SMS_TEMPLATE_LANGUAGE": "en", "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": SENDER, "TWILIO_BASE_URL": base,
        "DB_POOL_SIZE": str(args.threads + 2),
    })  # fmt: skip
    get_settings.cache_clear()
    print(f"notifications benchmark: (a) {args.n:,} notifications, {args.threads} threads; "
          f"(b) {limited_n:,} at {args.mps} segments/s")  # fmt: skip

    conn = admin(server)
    recreate(conn, DB)
    sim = start_simulator(port)
    try:
        migrate(url)
        bench = connect(url)
        load(bench, args.n, MONTH_A, 0)
        load(bench, limited_n, MONTH_B, args.n)
        engine = db_session.build_engine(url)
        db_session.set_engine(engine)

        print("  reference: raw SDK ...", flush=True)
        raw = raw_sdk_rate(base, args.n, args.threads)
        requests.post(f"{base}/_sim/reset", timeout=5)

        print("  (a) prepare + send, no rate limit ...", flush=True)
        prep, elapsed, submitted = send_month(base, MONTH_A, args.threads, None)
        e2e = submitted / elapsed
        requests.post(f"{base}/_sim/reset", timeout=5)

        print(f"  (b) send at {args.mps} segments/s ...", flush=True)
        os.environ["SMS_MPS"] = str(args.mps)
        get_settings.cache_clear()
        from worker.limits import sms_segments

        limiter = sms_segments()
        _, send_b, sent_b = send_month(base, MONTH_B, args.threads, limiter)
        rows = requests.get(f"{base}/_sim/messages", timeout=60).json()
        accepts = [(r["accepted_at"], r["num_segments"]) for r in rows]
        segments = sum(s for _, s in accepts)
        span = max(t for t, _ in accepts) - min(t for t, _ in accepts)
        achieved = segments / span if span else float("nan")
        from app.devtools.simulators.carrier import max_in_any_second

        peak = max_in_any_second(accepts)

        print()
        print(f"results (threads {args.threads}, limiter {type(limiter).__name__}):")
        print(f"  reference  raw SDK creates                    {raw:8.0f} msg/s")
        print(
            f"  (a) {submitted:,} prepared + sent in {elapsed:6.1f} s (prepare {prep:5.1f} s,"
            f" overlapped) = {e2e:6.0f} msg/s   {e2e / raw:5.2f}x raw [target >= 0.8]"
        )  # noqa: E501
        print(f"  (b) {sent_b:,} messages, {segments:,} segments: achieved {achieved:7.1f} seg/s"
              f"   {achieved / args.mps:5.3f}x limit [target >= 0.95]")  # fmt: skip
        print(f"      most segments in any one-second window    {peak:8d}"
              f"   limit {args.mps} [never above]")  # fmt: skip
        db_session.set_engine(None)
        engine.dispose()
        bench.close()
    finally:
        stop(sim)
        if not args.keep:
            drop(conn, DB)
        conn.close()


if __name__ == "__main__":
    main()
