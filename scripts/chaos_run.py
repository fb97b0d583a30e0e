"""The chaos run's plumbing: its servers and processes, the settings they run with, the
faults it can inject, and the verdict (scripts/chaos.py drives it through the phases of
scripts/chaos_phases.py)."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import _common
import chaos_invariants as inv
from chaos_servers import OwnPostgres, OwnRedis, Proc, receiver, scheduler, worker
from chaos_watch import FinalWatch, ambiguous_summary, callback_summary

from app.months import Month

ACCOUNT, TOKEN, SENDER = "AC" + "c" * 32, "chaos-token", "+15005550006"
DB = "pn_chaos"
CARRIER_TIMEOUT = 2.0
SENDING_AFTER = CARRIER_TIMEOUT * 6  # the lookup delay (and the old rule's requeue delay)


class Chaos:
    """One chaos run: what it started, what it broke, what it saw."""

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
        self.month = Month.parse(args.month)
        self.days = inv.month_days(self.month.first)
        self.receiver_port = _common.free_port()
        self.watch = FinalWatch()

    # --- plumbing -----------------------------------------------------------------------
    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.t0:7.1f}s] {message}", flush=True)

    def fault(self, phase: str, name: str, detail: str = "") -> None:
        self.faults.append((phase, name, time.monotonic() - self.t0, detail))
        self.say(f"FAULT {name} {detail}")

    @property
    def lag_margin(self) -> int:
        """SMS_RECONCILE_LIST_LAG_MARGIN_SECONDS: above the simulator's longest list lag."""
        return math.ceil(float(self.args.list_lag) * 1.25)

    def env(self) -> dict[str, str]:
        a = self.args
        return {
            "DATABASE_URL": self.pg.url(DB), "REDIS_URL": self.redis.url,
            "DRAMATIQ_BROKER": "redis", "TZ": "Asia/Jerusalem",
            "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER,
            "TWILIO_BASE_URL": self.carrier.base_url,
            "TWILIO_TIMEOUT_SECONDS": str(CARRIER_TIMEOUT),
            "CALLBACK_PUBLIC_URL": f"http://127.0.0.1:{self.receiver_port}",
            "CORE_BANKING_URL": self.bank.base_url, "CORE_BANKING_TIMEOUT_SECONDS": "5",
            "CORE_BANKING_BATCH_SIZE": "250", "BALANCE_BATCH_SIZE": "250",
            "BALANCE_SHARDS": "4", "BALANCE_CATCHUP_DAYS": "0",
            "SMS_SEND_WINDOW": "mon-sun 00:00-24:00", "SMS_MPS": str(a.sms_mps),
            "SMS_BATCH_SIZE": "25", "SMS_BATCH_TIME_BUDGET_SECONDS": "20",
            "SMS_RECONCILE_QUEUED_AFTER_SECONDS": "15",
            "SMS_RECONCILE_SENDING_AFTER_SECONDS": str(SENDING_AFTER),
            "SMS_VALIDITY_PERIOD_SECONDS": str(a.validity),
            "SMS_RECONCILE_LIST_LAG_MARGIN_SECONDS": str(self.lag_margin),
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

    def restart_receiver(self, phase: str) -> None:
        """SIGKILL the callback receiver; callbacks meanwhile fail (the carrier drops them)."""
        proc = self.receiver
        proc.sigkill()
        started = time.monotonic()
        time.sleep(self.args.receiver_down)
        proc.start()
        _common.wait_for_port(self.receiver_port, 60)
        down = time.monotonic() - started
        self.fault(phase, "receiver restart", f"SIGKILL, callbacks refused for {down:.1f} s")

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

    def count(self, sql: str) -> int:
        from sqlalchemy import text

        from app.db.session import get_engine

        with get_engine().connect() as conn:
            return int(conn.scalar(text(sql), {"a": self.days[0], "b": self.days[-1],
                                               "m": self.month.first}) or 0)  # fmt: skip

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
        _common.migrate(self.pg.url(DB))
        self.import_customers()
        from worker import tasks  # noqa: F401  (this process enqueues, as the scheduler does)

        env = self.env()
        for i in (1, 2):
            prom = {"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"prom-{i}")}
            self.procs.append(worker(f"worker-{i}", {**env, **prom}, self.workdir,
                                     self.args.threads))  # fmt: skip
        self.receiver = receiver(env, self.workdir, self.receiver_port)
        self.procs.append(self.receiver)
        if not self.args.no_scheduler:
            self.procs.append(scheduler(
                {**env, "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom-s")}, self.workdir))
        for p in self.procs:
            p.start()
        _common.wait_for_port(self.receiver_port, 60)
        self.say(f"servers up: postgres :{self.pg.port}, redis :{self.redis.port}, "
                 f"receiver :{self.receiver_port}, {len(self.procs)} processes; "
                 f"workdir {self.workdir}")  # fmt: skip

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

    # --- verdict ------------------------------------------------------------------------
    def verdicts(self) -> list[inv.Verdict]:
        from app.config import get_settings
        from app.db.session import get_engine

        engine = get_engine()
        settings = get_settings()
        first = self.month.first
        threshold = Decimal(settings.qualification_threshold)
        out = inv.checks_exactly_once(engine, first, self.args.seed)
        verdict, qualified = inv.recompute_qualifications(engine, first, threshold)
        out.append(verdict)
        out += inv.notifications_exactly_once(
            engine, first, qualified, self.carrier.state.per_recipient()
        )
        final = inv.notifications_final(engine, first, settings.delivery_deadline_hours)
        out.append(final)
        out += self.watch.verdicts(engine, dict(self.carrier.state.messages))
        self.dead_letters()
        out.append(inv.explain_dead_letters(engine, list(self.dead.values()), final.held))
        out.append(inv.no_personal_data_in_logs(engine, [p.log for p in self.procs]))
        return out

    def report(self, verdicts: list[inv.Verdict], seconds: float) -> str:
        from app.db.session import get_engine

        a = self.args
        lines = [f"chaos run: {a.customers:,} customers, month {a.month}, seed {a.seed}, "
                 f"{seconds:.0f} s; list lag {a.list_lag:.0f} s (+10 %), ValidityPeriod "
                 f"{a.validity} s, list-lag margin {self.lag_margin} s", "",
                 "| phase | fault injected | at (s) | detail |", "|---|---|---:|---|"]  # fmt: skip
        lines += [f"| {p} | {n} | {t:.1f} | {d} |" for p, n, t, d in self.faults]
        carrier = dict(sorted(self.carrier.state.requests.items()))
        bank = dict(sorted(self.bank.simulator.stats.items()))
        callbacks = self.safely(
            lambda: callback_summary(get_engine(), self.carrier.callbacks.snapshot()), ""
        )
        ambiguous = self.safely(lambda: ambiguous_summary(get_engine()), "")
        lines += ["", f"carrier answers: {json.dumps(carrier)}",
                  f"core banking answers: {json.dumps(bank)}", str(callbacks), str(ambiguous),
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
