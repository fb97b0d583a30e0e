"""Benchmark of delivery tracking: ./scripts/bench delivery [--messages N]

On a dedicated database (created here, dropped afterwards) it loads N submitted
notifications (one per qualified customer, one UTC day) and the same N messages into an
in-process carrier simulator (the real twilio SDK talks to it over loopback HTTP). The
messages reach their final status over the first ``--spread`` seconds of the run (2% fail
at delivery with 30003/30005/30006, 1% stay 'sent' for ever). Then, on the same data in
the same run:

  1. **bulk** (the default mode): poll rounds every ``--interval`` seconds until only
     the stuck messages are open, then one round past the 72 h deadline;
  2. **fetch** (the reference: per-message fetching): the history is cleared and the
     same messages are polled one fetch each, in the best case for it (everything that
     will be final already is), then the deadline round.

It prints carrier calls per message and the busy wall time of each (the time spent inside
poll rounds: carrier calls, parsing, database writes; not the waits between rounds), and
the ratios. Target:
bulk <= 0.05 carrier calls per message. The read limiter is off (calls are counted,
not paced); the database is local.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from _common import (
    Connection,
    Cursor,
    admin,
    connect,
    database_url,
    drop,
    migrate,
    recreate,
    scalar,
)

from app.db import session as db_session

if TYPE_CHECKING:
    from app.delivery.polling import DeliveryPoller
    from app.devtools.simulators.carrier import CarrierState

DB = "pn_bench_delivery"
ACCOUNT, TOKEN, SENDER = "AC" + "2" * 32, "bench-token", "+15005550006"
FAILING = ("+15005550010", "+15005550011", "+15005550012")


def load(conn: Connection, n: int, submitted_at: datetime) -> list[tuple[str, str]]:
    """N customers, qualifications and Submitted notifications; returns (sid, phone)."""
    cur = conn.cursor()
    cur.execute(
        """
        INSERT INTO customers (account_number, first_name, last_name, phone_number,
                               is_active, phone_status, phone_is_valid_mobile)
        SELECT 'D' || lpad(g::text, 9, '0'), 'Bench', 'Customer',
               CASE WHEN g %% 50 = 0 THEN (ARRAY[%s, %s, %s])[1 + (g / 50) %% 3]
                    ELSE '+97252' || lpad(g::text, 7, '0') END,
               true, 'MOBILE', true
        FROM generate_series(1, %s) g
        """,
        (*FAILING, n),
    )
    cur.execute(
        """
        INSERT INTO monthly_qualifications (customer_id, qualification_month, qualified,
            qualifying_days, total_days_in_month, phone_number_validated, calculated_at)
        SELECT id, DATE '2026-10-01', true, 31, 31, true, %s FROM customers
        """,
        (submitted_at,),
    )
    cur.execute(
        """
        INSERT INTO notifications (customer_id, qualification_id, phone_number, sms_content,
            character_count, segment_count, carrier_reference_id, submission_timestamp,
            submission_status)
        SELECT c.id, q.id, c.phone_number, 'Shalom', 6, 1, 'SM' || md5(c.account_number),
               %s, 'Submitted'
        FROM customers c JOIN monthly_qualifications q ON q.customer_id = c.id
        """,
        (submitted_at,),
    )
    cur.execute("VACUUM ANALYZE")
    cur.execute("SELECT carrier_reference_id, phone_number FROM notifications")
    return cur.fetchall()


def seed_simulator(
    state: CarrierState, messages: list[tuple[str, str]], submitted: float, spread: float
) -> int:
    from app.devtools.simulators.carrier import SimMessage

    rng, now, stuck = random.Random(7), time.time(), 0
    for i, (sid, phone) in enumerate(messages):
        m = SimMessage(sid=sid, to=phone, from_=SENDER, messaging_service_sid=None,
                       body="Shalom", num_segments=1, created=submitted, sent_after=0.0,
                       delivered_after=(now - submitted) + rng.uniform(0, spread))  # fmt: skip
        if i % 100 == 1:
            m.forced, stuck = ("sent", None), stuck + 1  # never final: the deadline ends it
        state.store(m)
    return stuck


def open_count(cur: Cursor) -> int:
    cur.execute(
        """SELECT count(*) FROM notifications n WHERE NOT EXISTS
           (SELECT 1 FROM delivery_status d WHERE d.notification_id = n.id AND d.final_status)"""
    )
    return int(scalar(cur))


def run_mode(
    mode: str,
    poller: DeliveryPoller,
    day: date,
    cur: Cursor,
    stuck: int,
    interval: float,
    max_rounds: int,
) -> tuple[int, int, float]:
    from app.db.session import session_scope
    from app.delivery.polling import Mode

    calls, rounds, busy = 0, 0, 0.0
    while rounds < max_rounds:
        if rounds:
            time.sleep(interval if mode == "bulk" else 0)
        t = time.perf_counter()
        stats = poller.poll_day(session_scope, day, Mode(mode), triggered_by="bench", force=True)
        busy += time.perf_counter() - t
        calls, rounds = calls + stats.calls, rounds + 1
        left = open_count(cur)
        print(f"    round {rounds}: {stats.calls} calls, {stats.changed} changes, {left:,} open")
        if left <= stuck:
            break
    poller.clock = lambda: datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=73)
    t = time.perf_counter()
    stats = poller.poll_day(session_scope, day, Mode(mode), triggered_by="bench")
    busy += time.perf_counter() - t
    calls += stats.calls
    print(f"    deadline round: {stats.calls} calls, {stats.deadline_finals} 'Unknown' verdicts")
    assert open_count(cur) == 0, "every message must end final"
    return calls, rounds + 1, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds to final status")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between rounds")
    parser.add_argument("--max-rounds", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    from app.config import get_settings
    from app.delivery.polling import DeliveryPoller
    from app.devtools.simulators.carrier import SimConfig, SimulatorThread
    from app.notifications.carrier import CarrierClient

    server = db_session.resolve_database_url()
    url = database_url(server, DB)
    conn = admin(server)
    recreate(conn, DB)
    sim = SimulatorThread(SimConfig(account_sid=ACCOUNT, auth_token=TOKEN)).start()
    try:
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        migrate(url)
        bench = connect(url)
        cur = bench.cursor()
        now = datetime.now(UTC).replace(tzinfo=None)
        submitted_at = max(now - timedelta(minutes=30), now.replace(hour=0, minute=0, second=1))
        print(f"delivery benchmark: {args.messages:,} submitted messages, one day")
        t = time.perf_counter()
        messages = load(bench, args.messages, submitted_at)
        stuck = seed_simulator(
            sim.state, messages, submitted_at.replace(tzinfo=UTC).timestamp(), args.spread
        )
        print(f"  loaded in {time.perf_counter() - t:.1f} s ({stuck:,} will stay 'sent')")
        settings = get_settings().model_copy(
            update={"delivery_carrier_rps": 0, "delivery_fetch_cap": args.messages,
                    "delivery_page_size": 1000}
        )  # fmt: skip
        client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url, timeout=30)
        results = {}
        for mode in ("bulk", "fetch"):
            if mode == "fetch":
                cur.execute("TRUNCATE delivery_status, job_runs CASCADE")
            print(f"  {mode}:")
            poller = DeliveryPoller(client, None, settings)
            results[mode] = run_mode(
                mode, poller, submitted_at.date(), cur, stuck, args.interval, args.max_rounds
            )
        print()
        print(f"{'mode':<8}{'calls':>10}{'calls/message':>16}{'rounds':>8}{'busy s':>10}")
        for mode, (calls, rounds, wall) in results.items():
            per = calls / args.messages
            print(f"{mode:<8}{calls:>10,}{per:>16.4f}{rounds:>8}{wall:>10.1f}")
        bulk, fetch = results["bulk"], results["fetch"]
        print(
            f"bulk / fetch: calls x{bulk[0] / fetch[0]:.4f}, busy time x{bulk[2] / fetch[2]:.2f} "
            "(busy: time inside poll rounds, without the waits between rounds)"
        )
        target = bulk[0] / args.messages <= 0.05
        print(f"target <= 0.05 calls/message in bulk mode: {'met' if target else 'NOT met'}")
    finally:
        sim.stop()
        db_session.set_engine(None)
        if not args.keep:
            drop(conn, DB)


if __name__ == "__main__":
    main()
