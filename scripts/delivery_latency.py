"""Callbacks vs polling alone: ``./scripts/bench delivery --callbacks`` (scripts/bench_delivery.py).

The same N messages, the same lives, twice in one run: created at ``--rate`` messages a
second (the sender's pace), ``sending`` 0.2 s and ``sent`` 0.5 s after creation, final
2-5 s after creation (2 % undelivered with 30003, 1 % stuck in ``sent`` until the 72 h
deadline). Each time, the delivery poller runs on the production schedule (a round every
3 minutes, DELIVERY_BACKOFF_MINUTES, auto mode) until only the stuck messages are open,
then one round past the deadline:

1. **polling alone**: the carrier sends no callback. Minutes of backoff would make it an
   hour long, so it runs ``--time-scale`` times faster (default 10): the poller's clock,
   the submission times it reads and the messages' lives are all compressed alike, and
   its times are reported back in production seconds. A round's own work is stretched
   alike (a 3 s round looks like 30 s at 10x), which a small scale keeps small against
   the 3-minute round.
2. **callbacks**: the carrier simulator signs and posts every status change to the real
   receiver process (``premium-notify serve callbacks``), in real time; the poller is the
   safety net beside it (real clock).

Figures: time from the carrier's final status to the database (the final
``delivery_status`` row's ``created_at``, written by the receiver or the poller, minus the
moment of the final status in the message's life), p50 / p95 / max; carrier read calls
(list pages + fetches) per message, the deadline round included.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import BIN, Connection, free_port, scalar, stop, wait_for_port

from app.db.session import session_scope

ACCOUNT, TOKEN, SENDER = "AC" + "2" * 32, "bench-token", "+15005550006"
ROUND = 180.0  # seconds between poll rounds: DELIVERY_POLL_CRON */3
Row = tuple[Any, str, str]  # a notification's id, sid and phone


@dataclass(frozen=True)
class Life:
    """One message's life in seconds after the run's start (production time)."""

    created: float
    final: float | None  # None: stuck in 'sent'
    word: str


def lives(n: int, rate: float, seed: int = 7) -> list[Life]:
    rng, out = random.Random(seed), []
    for i in range(n):
        created = i / rate
        if i % 100 == 1:
            out.append(Life(created, None, "sent"))
        else:
            word = "undelivered" if i % 50 == 3 else "delivered"
            out.append(Life(created, created + rng.uniform(2.0, 5.0), word))
    return out


def load(conn: Connection, tag: str, n: int, t0: datetime, rate: float) -> list[Row]:
    """N Submitted notifications, the i-th submitted at t0 + i/rate (id, sid, phone)."""
    cur = conn.cursor()
    cur.execute("TRUNCATE customers, monthly_qualifications, notifications, delivery_status, "
                "callback_receipts, job_runs, system_events CASCADE")  # fmt: skip
    cur.execute(
        """
        INSERT INTO customers (account_number, first_name, last_name, phone_number,
                               is_active, phone_status, phone_is_valid_mobile)
        SELECT 'L' || lpad(g::text, 9, '0'), 'Bench', 'Customer',
               '+97252' || lpad(g::text, 7, '0'), true, 'MOBILE', true
        FROM generate_series(0, %s - 1) g
        """,
        (n,),
    )
    cur.execute(
        """
        INSERT INTO monthly_qualifications (customer_id, qualification_month, qualified,
            qualifying_days, total_days_in_month, phone_number_validated, calculated_at)
        SELECT id, DATE '2026-10-01', true, 31, 31, true, %s FROM customers
        """,
        (t0,),
    )
    cur.execute(
        """
        INSERT INTO notifications (customer_id, qualification_id, phone_number, sms_content,
            character_count, segment_count, carrier_reference_id, submission_timestamp,
            submission_status)
        SELECT c.id, q.id, c.phone_number, 'Shalom', 6, 1, 'SM' || md5(c.account_number || %s),
               %s + make_interval(secs => substr(c.account_number, 2)::int / %s), 'Submitted'
        FROM customers c JOIN monthly_qualifications q ON q.customer_id = c.id
        """,
        (tag, t0, rate),
    )
    cur.execute("ANALYZE")
    cur.execute("SELECT n.id, n.carrier_reference_id, n.phone_number FROM notifications n "
                "JOIN customers c ON c.id = n.customer_id ORDER BY c.account_number")  # fmt: skip
    return list(cur.fetchall())


def seed(sim: Any, rows: list[Row], plan: list[Life], start: float, scale: float,
         callback: Callable[[Any], str | None]) -> None:  # fmt: skip
    """The messages at the simulator, their lives compressed ``scale`` times."""
    from app.devtools.simulators.carrier import SimMessage

    sim.state.reset()
    sim.callbacks.reset()
    for (nid, sid, phone), life in zip(rows, plan, strict=True):
        final = (life.final or life.created + 1.0) - life.created
        m = SimMessage(
            sid=sid,
            to=phone,
            from_=SENDER,
            messaging_service_sid=None,
            body="Shalom",
            num_segments=1,
            created=start + life.created / scale,
            sending_after=0.2 / scale,
            sent_after=0.5 / scale,
            delivered_after=final / scale,
            status_callback=callback(nid),
            stuck=life.final is None,
            final=("undelivered", 30003) if life.word == "undelivered" else None,
        )
        sim.state.store(m)
        if m.status_callback:
            sim.callbacks.message_stored(m)


def open_count(conn: Connection) -> int:
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM notifications n WHERE NOT EXISTS (SELECT 1 FROM "
                "delivery_status d WHERE d.notification_id = n.id AND d.final_status)")  # fmt: skip
    return int(scalar(cur))


def drive(conn: Connection, poller: Any, plan: list[Life], clock: Callable[[], float],
          scale: float, say: Callable[[str], None]) -> int:  # fmt: skip
    """Poll rounds every ROUND production seconds until only stuck messages are open (and
    the last final status is past), then the deadline round; returns the carrier calls."""
    from app.delivery.polling import Mode

    stuck = sum(1 for life in plan if life.final is None)
    last_final = max(life.final or 0.0 for life in plan)
    calls, next_round = 0, ROUND
    while True:
        now = clock()
        if now >= last_final and open_count(conn) <= stuck:
            break
        if now >= next_round:
            next_round += ROUND
            with session_scope() as session:
                days = poller.due_days(session)
            for due in days:
                stats = poller.poll_day(session_scope, due.day, Mode.AUTO, triggered_by="bench")
                calls += stats.calls
                say(f"round at {now:6.0f} s: {stats.mode} {stats.calls} calls, due {stats.due}, "
                    f"{stats.changed} changes; {open_count(conn):,} open")  # fmt: skip
        time.sleep(min(0.5, 5.0 / scale))  # rounds start within 5 production seconds
    base = poller.clock
    poller.clock = lambda: base() + timedelta(hours=73)
    with session_scope() as session:
        days = poller.due_days(session)
    for due in days:
        stats = poller.poll_day(session_scope, due.day, Mode.AUTO, triggered_by="bench")
        calls += stats.calls
        say(f"deadline round: {stats.calls} calls, {stats.deadline_finals} 'Unknown' verdicts")
    return calls


def latencies(conn: Connection, rows: list[Row], plan: list[Life],
              t0: datetime) -> list[float]:  # fmt: skip
    """Seconds from each final status to its final row (production time)."""
    cur = conn.cursor()
    cur.execute("SELECT notification_id, created_at FROM delivery_status WHERE final_status")
    written = dict(cur.fetchall())
    out = []
    for (nid, _, _), life in zip(rows, plan, strict=True):
        if life.final is not None and nid in written:
            out.append((written[nid] - t0).total_seconds() - life.final)
    return out


def finals_by_callback(conn: Connection) -> int:
    cur = conn.cursor()
    cur.execute("SELECT count(DISTINCT notification_id) FROM callback_receipts WHERE outcome "
                "IN ('applied', 'settled') AND message_status IN ('delivered', 'undelivered')")
    return int(scalar(cur))


def summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return statistics.median(ordered), p95, ordered[-1]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def run(url: str, conn: Connection, sim: Any, settings: Any, n: int, rate: float,
        scale: float) -> dict[str, tuple[int, list[float], int]]:  # fmt: skip
    """Both modes; returns mode -> (carrier calls, latencies, finals by callback)."""
    from app.callbacks.urls import status_callback_url
    from app.delivery.polling import DeliveryPoller
    from app.notifications.carrier import CarrierClient

    plan = lives(n, rate)
    client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url, timeout=30)
    results: dict[str, tuple[int, list[float], int]] = {}

    def say(line: str) -> None:
        print(f"    {line}", flush=True)

    # 1. Polling alone, on a compressed clock whose day is the real UTC day (the list
    #    filters on the carrier's real DateSent).
    now = utcnow()
    t0v, t0r = now.replace(hour=0, minute=0, second=5, microsecond=0), time.time() + 2
    print(f"  polling alone ({scale:g}x time):", flush=True)
    rows = load(conn, "poll", n, t0v, rate)
    seed(sim, rows, plan, t0r, scale, lambda _: None)

    def virtual() -> float:
        return (time.time() - t0r) * scale

    poller = DeliveryPoller(client, None, settings,
                            clock=lambda: t0v + timedelta(seconds=virtual()))  # fmt: skip
    calls = drive(conn, poller, plan, virtual, scale, say)
    results["polling"] = (calls, latencies(conn, rows, plan, t0v), 0)

    # 2. Callbacks to the real receiver process, real time, polling beside it.
    print("  callbacks (real time, the receiver process):", flush=True)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    t0r = time.time() + 3
    t0v = datetime.fromtimestamp(t0r, UTC).replace(tzinfo=None)
    rows = load(conn, "callbacks", n, t0v, rate)
    env = {**os.environ, "DATABASE_URL": url, "TWILIO_AUTH_TOKEN": TOKEN,
           "CALLBACK_PUBLIC_URL": public, "LOG_LEVEL": "WARNING"}  # fmt: skip
    receiver = subprocess.Popen(
        [str(BIN / "premium-notify"), "serve", "callbacks", "--host", "127.0.0.1",
         "--port", str(port), "--metrics-port", "0"], env=env,
    )  # fmt: skip
    try:
        wait_for_port(port, 60)
        seed(sim, rows, plan, t0r, 1.0, lambda nid: status_callback_url(public, nid))
        poller = DeliveryPoller(client, None, settings, clock=utcnow)
        calls = drive(conn, poller, plan, lambda: time.time() - t0r, 1.0, say)
        time.sleep(1.0)
        results["callbacks"] = (calls, latencies(conn, rows, plan, t0v), finals_by_callback(conn))
        answers = Counter(r.outcome for r in sim.callbacks.snapshot())
        say(f"callbacks posted: {sum(answers.values()):,}, receiver answers {dict(answers)}")
    finally:
        stop(receiver)
    return results


def report(results: dict[str, tuple[int, list[float], int]], n: int, scale: float) -> None:
    print()
    print(f"{'mode':<11}{'final -> database: p50':>24}{'p95':>10}{'max':>10}"
          f"{'carrier calls':>15}{'calls/message':>15}{'finals by callback':>20}")  # fmt: skip
    for mode, (calls, values, by_callback) in results.items():
        p50, p95, top = summary(values)
        print(f"{mode:<11}{p50:>22.1f} s{p95:>8.1f} s{top:>8.1f} s{calls:>15,}"
              f"{calls / n:>15.4f}{by_callback:>13,}/{len(values):,}")  # fmt: skip
    poll, cb = results["polling"], results["callbacks"]
    p95 = summary(cb[1])[1]
    print(f"polling ran {scale:g}x faster; its times are production seconds "
          "(DELIVERY_BACKOFF_MINUTES, a round every 3 min)")
    print(f"target: callbacks p95 <= 2 s: {'met' if p95 <= 2 else 'NOT met'} ({p95:.2f} s); "
          f"calls/message callbacks <= polling: "
          f"{'met' if cb[0] <= poll[0] else 'NOT met'} ({cb[0] / n:.4f} vs {poll[0] / n:.4f}; "
          "the polling-only reference of docs/delivery.md: 0.0030)")
