"""The live monitoring check: the project's monitoring, run for real and asserted.

    ./scripts/monitoring-check            # 60 customers
    ./scripts/monitoring-check --short    # 16 customers (tests/observability runs it)

Starts (scripts/monitoring_stack.py) a private PostgreSQL and Redis, TLS-only with
compose's settings and secret files (scripts/monitoring_tls.py), the exporters wired
as compose wires them, Prometheus with the project's rules and a scrape configuration
generated from docker/prometheus/prometheus.yml (1 s scrapes and evaluations, ``for:``
shortened in its own copy of the rules), Alertmanager routing to a webhook receiver, a
real worker, scheduler and callback receiver; runs a short month through them, then
asserts through Prometheus' HTTP API:

1. every target is up (the exporters over TLS, as compose wires them: PostgreSQL and
   Redis here refuse plaintext, which the check also tries), and no sample carries an
   ``exported_*`` label (a label of ours clashing with Prometheus' own, renamed because
   the scrape has no honor_labels);
2. the healthy month leaves no alert pending or firing;
3. each induced fault fires its alert end to end, to the webhook receiver: a job run that
   fails from the CLI (JobFailed), a row stuck in Sending (NotificationsStuckSending),
   PostgreSQL stopped (PostgresDown), the worker stopped (NoWorkerUp); and a message
   pushed into Redis unsigned is refused and counted (pn_broker_messages_refused_total);
4. every alert and recording expression and every Grafana panel query is valid, and each
   of its selectors matched series during the run (or is listed in ``ONLY_WHEN`` with
   the event it needs);
5. every metric family the application served is on a dashboard (or internal).

Exit status 0 when every assertion holds; the failures are printed, one per line.
Everything started is stopped at the end (``--keep`` leaves the work folder).
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace

import _common
from monitoring_promql import Expr, metric_name, panel_exprs, rule_exprs, selectors
from monitoring_stack import Stack, missing_programs

# Selectors whose series exist only when their event happens, which a healthy short
# month on one machine does not have: name -> the event.
ONLY_WHEN = {
    "pg_replication_lag_seconds": "a streaming replica (postgres_exporter on a standby)",
    "pg_replication_is_replica": "a streaming replica",
    "pn_balance_missing_total": "the balance source lacks an account's balance",
    "pn_rate_limit_waits_total": "a sender waits for the carrier rate limit",
    "pn_retention_rows_total": "rows past their hot period (months old)",
    "pn_sms_cost_total": "the carrier prices a message",
    "pn_sms_opt_outs_total": "a customer opts out or in",
    "pn_metrics_refresh_errors_total": "a scrape-time sampler fails",
    "dramatiq_message_retries_total": "an actor raises and is retried",
    "dramatiq_message_rejects_total": "a message is dead-lettered",
    "pn_callback_receipts_total": "a receipt the carrier sends late or twice",
    "pn_job_duration_seconds_bucket": "a job run finishes in a worker of this group",
    "pn_job_runs_total": "a job run finishes in a worker of this group",
    "dramatiq_message_errors_total": "an actor raises",
    "pn_reconciler_actions_total": "a reconciler replays stuck work",
    "dramatiq_delayed_messages_inprogress": "a worker holds a delayed message until due",
    "pn_delivery_carrier_calls_total": "delivery polling asks the carrier (a callback missed)",
    "pn_phones_revalidated_total": "phone verdicts older than the month (numbers changed)",
}
# Label values a healthy run does not produce (selector -> the event).
ONLY_WHEN_SELECTOR = {
    'pn_sms_submissions_total{error_code!="none"}': "the carrier refuses a message",
    'pg_stat_activity_max_tx_duration{state="active", datname!~"template.*|postgres"}': (
        "a query running in the application database while scraped"
    ),
    'pg_stat_activity_max_tx_duration{state="active"}': "an active query while scraped",
    'pn_balance_checks_total{flag!="none"}': "a data-quality flag on a balance",
}


class Check:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="pn-monitoring-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.stack = Stack(self.workdir)
        self.failures: list[str] = []
        self.notes: list[str] = []
        self.t0 = time.time()

    def say(self, text: str) -> None:
        print(f"[{time.time() - self.t0:6.1f}s] {text}", flush=True)

    def fail(self, text: str) -> None:
        self.failures.append(text)
        self.say(f"FAIL {text}")

    def wait(self, what: str, ok: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return True
            time.sleep(0.5)
        self.fail(f"timed out ({timeout:.0f} s) waiting for {what}")
        return False

    # --- setup and the month ------------------------------------------------------------
    def start(self) -> None:
        import os

        s = self.stack
        s.start_database()
        s.start_simulators()
        for name in ("DATABASE_URL", "REDIS_URL", "BROKER_SIGNING_KEY"):  # the secrets' instead
            os.environ.pop(name, None)
        os.environ.update(s.app_env())  # this process enqueues as an operator run does
        from app.config import get_settings

        get_settings.cache_clear()
        s.start_exporters()
        s.start_app()
        s.start_monitoring()
        self.say(f"stack up in {self.workdir}: prometheus :{s.prometheus_port}")

    def targets_up(self) -> bool:
        active = self.stack.api("targets").get("data", {}).get("activeTargets", [])
        return bool(active) and all(t["health"] == "up" for t in active)

    def check_perimeter(self) -> None:
        """The servers are compose's: TCP without TLS gets nowhere."""
        import psycopg2
        import redis

        s = self.stack
        password = (s.secrets / "postgres_password").read_text().strip()
        try:
            psycopg2.connect(host="127.0.0.1", port=s.pg.port, user="premium_notify",
                             password=password, dbname="premium_notify", sslmode="disable",
                             connect_timeout=5).close()  # fmt: skip
            self.fail("PostgreSQL accepted a connection without TLS")
        except psycopg2.OperationalError:
            pass
        try:
            redis.Redis(host="127.0.0.1", port=s.redis.port, socket_timeout=5).ping()
            self.fail("Redis answered without TLS")
        except redis.RedisError:
            pass

    def run_month(self) -> None:
        import chaos_phases

        from app.customers.importer import import_customers
        from app.db.session import session_scope
        from app.months import Month

        first = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)
        month = Month.parse(f"{first:%Y-%m}")
        days = [first + timedelta(days=i) for i in range((month.next_first - first).days)]
        path = self.workdir / "customers.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["account_number", "first_name", "last_name", "email",
                          "phone_number", "account_type", "is_active"])  # fmt: skip
            for i in range(1, self.args.customers + 1):
                out.writerow([f"MC{i:07d}", f"Dana{i}", "Levi", f"d{i}@example.co.il",
                              f"+97252{i:07d}", "premium", "true"])  # fmt: skip
        import_customers(session_scope, path)
        from worker import tasks  # noqa: F401  (this process enqueues, as the scheduler does)

        fake = SimpleNamespace(days=days, month=month)
        chaos_phases.kick_balances(fake)  # type: ignore[arg-type]
        self.wait("the month's balance runs", lambda: self.count(
            "SELECT count(*) FROM job_runs WHERE job = 'balance_checks' AND status = 'Finished'"
        ) >= len(days), 240)  # fmt: skip
        chaos_phases.kick_sms(fake)  # type: ignore[arg-type]
        self.wait("qualification", lambda: self.count(
            "SELECT count(*) FROM job_runs WHERE job = 'qualification' AND status = 'Finished'"
        ) >= 1, 120)  # fmt: skip
        settled = (
            "SELECT count(*) FROM notifications n WHERE n.submission_status = 'Submitted' AND "
            "EXISTS (SELECT 1 FROM delivery_status d WHERE d.notification_id = n.id "
            "AND d.final_status)"
        )
        self.wait("every message sent and delivered", lambda: self.count(
            "SELECT count(*) FROM notifications") > 0 and self.count(settled) == self.count(
            "SELECT count(*) FROM notifications"), 180)  # fmt: skip
        self.say(f"month {month}: {self.count('SELECT count(*) FROM notifications')} messages")

    def count(self, sql: str) -> int:
        conn = _common.connect(self.stack.database_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return int(_common.scalar(cur))
        finally:
            conn.close()

    def execute(self, sql: str) -> None:
        conn = _common.connect(self.stack.database_url)
        try:
            with conn, conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    # --- assertions ---------------------------------------------------------------------
    def active_alerts(self) -> list[str]:
        alerts = self.stack.api("alerts").get("data", {}).get("alerts", [])
        return [f"{a['labels']['alertname']} ({a['state']}) {a['labels']}" for a in alerts]

    def check_healthy(self) -> None:
        time.sleep(5)  # several evaluations past the month's end, past every shortened for:
        for alert in self.active_alerts():
            self.fail(f"healthy run: alert {alert}")
        labels = self.stack.api("labels").get("data", [])
        clashes = [name for name in labels if name.startswith("exported_")]
        if clashes:
            self.fail(f"labels renamed by Prometheus (clash with its own): {clashes}")

    def expect_alert(self, fault: str, alertname: str, **labels: str) -> None:
        if self.wait(f"{alertname} at the webhook ({fault})",
                     lambda: bool(self.stack.webhook.firing(alertname, **labels)), 60):  # fmt: skip
            self.say(f"fault {fault!r}: {alertname} {labels or ''} reached the webhook")

    def faults(self) -> None:
        s = self.stack
        # A job run that fails, started from the CLI: its metrics come from job_runs.
        cli = [str(_common.BIN / "premium-notify"), "run", "retention"]
        # Cold storage that cannot be reached (an object store on a closed port): the run
        # fails when it lists the store for expired sets, whatever the data.
        env = {**s.app_env(), "COLD_STORAGE_URL": "s3://pn-unreachable/cold",
               "COLD_STORAGE_S3_ENDPOINT_URL": f"http://127.0.0.1:{_common.free_port()}",
               "AWS_ACCESS_KEY_ID": "none", "AWS_SECRET_ACCESS_KEY": "none",
               "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
        done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode == 0:
            self.fail(f"premium-notify run retention did not fail: {done.stdout}")
        self.expect_alert("a failed job (CLI)", "JobFailed", pn_job="retention")
        # A row stuck in Sending for two hours.
        self.execute(
            "UPDATE notifications SET submission_status = 'Sending', claimed_at = "
            "LOCALTIMESTAMP - interval '2 hours' WHERE id = (SELECT min(id::text)::uuid "
            "FROM notifications WHERE submission_status = 'Submitted')"
        )
        self.expect_alert("a row stuck in Sending", "NotificationsStuckSending")
        # A message pushed into Redis by hand, unsigned: refused, dead-lettered, counted.
        self.push_unsigned()
        refused = 'pn_broker_messages_refused_total{reason="unsigned"} > 0'
        if self.wait(f"the unsigned message refused ({refused})", lambda: self.has(refused), 60):
            self.say("fault 'an unsigned message': refused and counted")
        # PostgreSQL stopped (the exporter still answers: pg_up == 0).
        s.pg.stop()
        self.expect_alert("PostgreSQL stopped", "PostgresDown")
        if not s.webhook.firing("PostgresDown"):
            for query in ('up{job="postgres"}', 'scrape_duration_seconds{job="postgres"}'):
                self.say(f"{query}: {s.api('query', query=query).get('data')}")
        s.pg.start()
        # The worker stopped: its target is down.
        s.procs["worker"].stop()
        self.expect_alert("the worker stopped", "NoWorkerUp")

    def push_unsigned(self) -> None:
        """What ``redis-cli HSET dramatiq:<q>.msgs <id> <json>; RPUSH dramatiq:<q> <id>``
        does with the worker's Redis password: a message no producer of ours signed."""
        import json
        import uuid

        import redis

        url = (self.stack.secrets / "redis_url_worker").read_text().strip()
        client = redis.Redis.from_url(url)
        redis_id, queue = str(uuid.uuid4()), "maintenance"
        body = {"queue_name": queue, "actor_name": "maintenance.retention_kick", "args": [],
                "kwargs": {}, "options": {"redis_message_id": redis_id},
                "message_id": str(uuid.uuid4()),
                "message_timestamp": int(time.time() * 1000)}  # fmt: skip
        client.hset(f"dramatiq:{queue}.msgs", redis_id, json.dumps(body))
        client.rpush(f"dramatiq:{queue}", redis_id)
        client.close()

    def has(self, query: str) -> bool:
        return bool(self.stack.api("query", query=query).get("data", {}).get("result"))

    def kicked(self) -> bool:
        return self.has("pn_scheduler_kicks_total")

    def check_expressions(self) -> None:
        span = f"{int(time.time() - self.t0) + 5}s"
        seen = set()
        for expr in [*rule_exprs(), *panel_exprs()]:
            answer = self.stack.api("query", query=expr.text)
            if answer.get("status") != "success":
                self.fail(f"{expr.origin}: invalid PromQL: {answer.get('error')}")
                continue
            for selector in selectors(expr.text):
                if (expr.origin, selector) in seen:
                    continue
                seen.add((expr.origin, selector))
                self.check_selector(expr, selector, span)

    def has_series(self, selector: str, span: str) -> bool:
        answer = self.stack.api("query", query=f"count(last_over_time({selector}[{span}]))")
        return bool(answer.get("data", {}).get("result"))

    def check_selector(self, expr: Expr, selector: str, span: str) -> None:
        if self.has_series(selector, span):
            return
        name = metric_name(selector)
        base = re.sub(r"_(bucket|count|sum)$", "", name or "")
        if selector in ONLY_WHEN_SELECTOR or name in ONLY_WHEN:
            why = ONLY_WHEN_SELECTOR.get(selector) or ONLY_WHEN.get(name or "")
            self.notes.append(f"{expr.origin}: {selector} empty here (needs: {why})")
            return
        if name and self.has_series(f'{{__name__="{name}"}}', span):
            self.fail(f"{expr.origin}: {selector} never matched, though {name} has series "
                      "(a label or value it expects is not there)")  # fmt: skip
        else:
            self.fail(f"{expr.origin}: {selector}: no such series was ever scraped "
                      f"({base or selector} is exported by nothing that runs)")  # fmt: skip

    def check_dashboard_coverage(self) -> None:
        from app.observability.metrics import INTERNAL

        start = str(self.t0)
        names = self.stack.api("label/__name__/values", start=start,
                               **{"match[]": '{job=~"workers|scheduler|callbacks"}'})  # fmt: skip
        panels = " ".join(e.text for e in panel_exprs())
        for name in names.get("data", []):
            if name in ("up", "ALERTS", "ALERTS_FOR_STATE") or name.startswith("scrape_"):
                continue  # Prometheus' own series about the scrape and the alerts
            family = re.sub(r"_(total|bucket|count|sum|created)$", "", name)
            if family in INTERNAL or re.search(rf"\b{re.escape(family)}", panels):
                continue
            self.fail(f"{name} is served but on no dashboard panel (nor metrics.INTERNAL)")

    # --- the run ------------------------------------------------------------------------
    def run(self) -> int:
        try:
            self.start()
            self.wait("every scrape target up", self.targets_up, 90)
            self.check_perimeter()
            self.run_month()
            self.stack.write_backup_textfile()
            self.check_healthy()
            self.faults()
            # periodiq kicks at full minutes: the kick series exist after the first one.
            self.wait("the scheduler's first kick", self.kicked, 75)
            self.check_expressions()
            self.check_dashboard_coverage()
        finally:
            self.stack.stop()
            if not self.args.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)
        for note in self.notes:
            self.say(f"note: {note}")
        verdict = "FAILED" if self.failures else "passed"
        self.say(f"monitoring check {verdict}: {len(self.failures)} failure(s)")
        return 1 if self.failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--short", action="store_true", help="16 customers (the suite)")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    args.customers = args.customers or (16 if args.short else 60)
    missing = missing_programs()
    if missing:
        print(f"missing: {', '.join(missing)} (./scripts/test installs them)", file=sys.stderr)
        return 2
    return Check(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
