"""The chaos run's two phases, and the scheduler's kicks it plays, pinned to its month.

Faults fire at points of progress (a share of the month's checks written, of the
qualified customers texted), each moved by a seeded jitter of +/- 4 %. The kicks are the
periodic actors' own logic with "today" pinned to the month under test: the balance kick
for its last day, the monthly qualification kick for the day after it (so a run for an
older month qualifies and texts that month, never the real previous one), and the
month-independent reconcile and delivery-poll actors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from datetime import time as clock

import chaos_invariants as inv
from chaos_run import Chaos

Plan = list[tuple[float, Callable[[], None]]]


def jitter(chaos: Chaos, plan: Plan) -> Plan:
    """Each fault a little earlier or later (seeded): random moments, reproducible."""
    moved = [(at + chaos.rng.uniform(-0.04, 0.04), fn) for at, fn in plan]
    return sorted(moved, key=lambda p: p[0])


# --- the scheduler's kicks, pinned to the month under test ---------------------------
def kick_balances(chaos: Chaos) -> bool:
    """balances.daily_kick's logic with 'today' = the month's last day; True when done."""
    from app.balances import runs
    from app.db.session import session_scope
    from worker.actors import balances

    with session_scope() as session:
        plan = runs.plan_kick(session, chaos.days[-1], len(chaos.days) - 1)
    for day in plan.to_start:
        balances.start_day.send(day.isoformat())
    for run_id, unfinished in plan.to_resume:
        balances.send_shards(run_id, unfinished)
    return not plan.to_start and not plan.to_resume


def kick_sms(chaos: Chaos) -> None:
    """qualification.monthly_kick's logic on the 1st after the month (the window: that
    month alone), then what the reconcile and delivery-poll kicks send."""
    from app.config import get_settings
    from app.db.session import session_scope
    from app.qualification import schedule
    from worker.actors import delivery, notifications, qualification
    from worker.enqueue import enqueue

    settings = get_settings()
    after = datetime.combine(chaos.month.next_first, clock(12), settings.tz)
    with session_scope() as session:
        plan = schedule.plan_kick(session, settings.tz, 1, now=after)
    for month in plan.to_qualify:
        enqueue(qualification.run_month, str(month))
    for month in plan.to_notify:
        qualification.start_notification_stage(str(month))
    enqueue(notifications.reconcile)
    enqueue(delivery.poll)


# --- phases -----------------------------------------------------------------------------
def balances_phase(chaos: Chaos) -> bool:
    phase = "balances"
    expected = chaos.count("SELECT count(*) FROM customers WHERE is_active") * len(chaos.days)
    w1, w2 = chaos.procs[0], chaos.procs[1]
    plan = jitter(chaos, [
        (0.10, lambda: chaos.kill(phase, w1)),
        (0.30, lambda: chaos.flushall(phase)),
        (0.45, lambda: chaos.pg_restart(phase)),
        (0.60, lambda: chaos.kill(phase, w2)),
        (0.75, lambda: chaos.kill(phase, w1, down=0.5)),
    ])  # fmt: skip
    deadline = time.monotonic() + chaos.args.phase_timeout
    last_kick = 0.0
    chaos.safely(lambda: kick_balances(chaos))
    while time.monotonic() < deadline:
        done = chaos.safely(lambda: chaos.count(
            "SELECT count(*) FROM daily_balance_checks WHERE check_date BETWEEN :a AND :b"),
            default=None)  # fmt: skip
        if done is not None:
            while plan and done >= plan[0][0] * expected:
                plan.pop(0)[1]()
        if time.monotonic() - last_kick > chaos.args.kick_every:
            last_kick = time.monotonic()
            if chaos.safely(lambda: kick_balances(chaos), default=False) and not plan:
                chaos.say(f"balances phase done: {done:,}/{expected:,} checks")
                return True
        time.sleep(0.3)
    chaos.say("balances phase timed out")
    return False


def carrier_faults(chaos: Chaos) -> None:
    """The carrier as unkind as Twilio, all along the SMS phase."""
    cfg, lag = chaos.carrier.state.config, chaos.args.list_lag
    cfg.update({
        "rate_429": 0.10, "rate_500": 0.03, "store_then_500_rate": 0.02,
        "accept_timeout_rate": 0.02, "list_lag": lag, "list_lag_jitter": lag * 0.1,
        "callback_loss": 0.10, "callback_duplicate": 0.05, "callback_reorder": 0.05,
        "callback_delay": 0.5, "rate_undelivered": 0.03, "rate_late_failed": 0.01,
    })  # fmt: skip
    chaos.fault("sms", "carrier faults on",
                "10 % 429, 3 % 500, 2 % stored-then-500, 2 % accept-then-time-out; "
                f"list lag {lag:.0f}-{lag * 1.1:.0f} s")  # fmt: skip
    chaos.fault("sms", "callback faults on", "10 % lost, 5 % duplicated, 5 % reordered, "
                "up to 0.5 s late")  # fmt: skip


def sms_phase(chaos: Chaos) -> bool:
    phase = "sms"
    cfg = chaos.carrier.state.config
    carrier_faults(chaos)
    w1, w2 = chaos.procs[0], chaos.procs[1]
    outage = chaos.args.outage

    def start_outage() -> None:
        cfg.outage = True
        chaos.fault(phase, "carrier outage", f"every call answers 503 for {outage:.0f} s")
        threading.Timer(outage, lambda: setattr(cfg, "outage", False)).start()

    plan = jitter(chaos, [
        (0.05, lambda: chaos.kill(phase, w1)),
        (0.15, lambda: chaos.restart_receiver(phase)),
        (0.20, lambda: chaos.flushall(phase)),
        (0.35, start_outage),
        (0.50, lambda: chaos.pg_restart(phase)),
        (0.65, lambda: chaos.kill(phase, w2)),
        (0.80, lambda: chaos.kill(phase, w1, down=0.5)),
    ])  # fmt: skip
    deadline = time.monotonic() + chaos.args.phase_timeout
    last_kick = last_sample = 0.0
    from app.db.session import get_engine

    while time.monotonic() < deadline:
        qualified = chaos.safely(lambda: chaos.count(
            "SELECT count(*) FROM monthly_qualifications WHERE qualification_month = :m "
            "AND qualified"), default=None)  # fmt: skip
        if qualified:
            sent = len(chaos.carrier.state.per_recipient())
            while plan and not cfg.outage and sent >= plan[0][0] * qualified:
                plan.pop(0)[1]()
        if time.monotonic() - last_sample > 2.0:
            last_sample = time.monotonic()
            chaos.safely(lambda: chaos.watch.sample(get_engine()))
        if time.monotonic() - last_kick > chaos.args.kick_every:
            last_kick = time.monotonic()
            chaos.safely(lambda: kick_sms(chaos))
            if not plan and not cfg.outage and chaos.safely(lambda: sms_done(chaos), False):
                chaos.say("SMS phase done")
                return True
        time.sleep(0.3)
    chaos.say("SMS phase timed out")
    return False


def sms_done(chaos: Chaos) -> bool:
    from app.db.session import get_engine

    if not chaos.count("SELECT count(*) FROM job_runs WHERE job = 'qualification' "
                       "AND run_key = to_char(CAST(:m AS date), 'YYYY-MM') "
                       "AND status = 'Finished'"):  # fmt: skip
        return False
    qualified = chaos.count("SELECT count(*) FROM monthly_qualifications "
                            "WHERE qualification_month = :m AND qualified")  # fmt: skip
    rows = chaos.count(
        "SELECT count(*) FROM notifications n JOIN monthly_qualifications q "
        "ON q.id = n.qualification_id WHERE q.qualification_month = :m"
    )
    final = inv.notifications_final(get_engine(), chaos.month.first, 72)
    return rows == qualified and final.held
