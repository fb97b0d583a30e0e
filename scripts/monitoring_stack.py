"""The live monitoring check's servers, all on 127.0.0.1 and free ports.

* a private PostgreSQL 15 cluster (``/usr/lib/postgresql/15/bin``, never the machine's
  shared server) and a private Redis, both TLS-only as compose runs them, with a
  throwaway CA and compose's secret files (scripts/monitoring_tls.py);
* Debian's ``prometheus-postgres-exporter``, ``prometheus-redis-exporter`` and
  ``prometheus-node-exporter`` started with the *environment compose gives them*
  (docker/compose.yaml: same variable names, secret files under ``secrets/``);
* Debian's ``prometheus`` with a copy of the project's rules (``for:`` shortened) and a
  scrape configuration generated from docker/prometheus/prometheus.yml;
* Debian's ``prometheus-alertmanager`` routing as docker/alertmanager/alertmanager.yml
  does, to a webhook receiver in this process (``Webhook``);
* the application: a ``premium-notify-worker`` worker, the ``periodiq`` scheduler and the
  callback receiver, with the carrier and core-banking simulators in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import _common
import psycopg2
import yaml
from chaos_servers import Proc
from monitoring_promql import alertmanager_config, copy_rules, loopback_scrape_config
from monitoring_tls import (
    DATABASE,
    DB_USER,
    TlsRedis,
    compose_service,
    local_path,
    postgres_tls_settings,
    write_secrets,
)
from pg_clusters import PG15_BIN, Pg15

ACCOUNT, TOKEN, SENDER = "AC" + "d" * 32, "monitoring-token", "+15005550006"
# Debian package -> program.
PROGRAMS = {
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
    "prometheus-node-exporter": "prometheus-node-exporter",
}


def missing_programs() -> list[str]:
    """What the check needs and this machine lacks (./scripts/test installs them)."""
    missing = [pkg for pkg, program in PROGRAMS.items() if shutil.which(program) is None]
    if not (PG15_BIN / "initdb").exists():
        missing.append(f"PostgreSQL 15 ({PG15_BIN})")
    for program in ("redis-server", "openssl"):
        if shutil.which(program) is None:
            missing.append(program)
    return missing


class Webhook:
    """Alertmanager's receiver: keeps every alert notification it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.extend(json.loads(body).get("alerts", []))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/alerts"

    def firing(self, alertname: str, **labels: str) -> list[dict[str, Any]]:
        return [
            a
            for a in list(self.alerts)
            if a.get("status") == "firing"
            and a["labels"].get("alertname") == alertname
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def compose_environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (compose_service(service).get("environment") or {}).items()}


class Stack:
    """Everything the check runs; ``stop()`` ends all of it (and only it)."""

    def __init__(self, workdir: Path, interval: str = "1s", for_duration: str = "2s") -> None:
        self.workdir = workdir
        self.interval, self.for_duration = interval, for_duration
        self.secrets = workdir / "secrets"
        self.secrets.mkdir(parents=True, exist_ok=True)
        self.pg = Pg15(workdir / "pg")
        self.redis = TlsRedis(workdir, self.secrets)
        self.procs: dict[str, Proc] = {}
        # What prometheus.yml names -> the loopback port it runs on here.
        names = ("worker", "scheduler", "callbacks", "postgres-exporter", "redis-exporter",
                 "node-exporter", "localhost", "alertmanager")  # fmt: skip
        self.ports = {name: _common.free_port() for name in names}
        self.prometheus_port = self.ports["localhost"]
        self.callback_port = _common.free_port()
        self.textfile_dir = workdir / "textfile"
        self.webhook = Webhook()
        self.sims: list[Any] = []

    # --- the database and Redis ------------------------------------------------------------
    def start_database(self) -> None:
        write_secrets(self.secrets, self.pg.port, self.redis.port)
        self.pg.init_with({"max_connections": "100"})
        # compose's TLS settings and pg_hba.conf: TCP is TLS and a password, or nothing.
        self.pg.configure(postgres_tls_settings(self.secrets, self.pg.workdir / "tls",
                                                self.pg.own))  # fmt: skip
        self.pg.start()
        # The image's superuser (POSTGRES_USER) with its password; set up through the
        # socket, the one way in without TLS (pg_hba.conf's "local" line).
        password = (self.secrets / "postgres_password").read_text().strip()
        conn = psycopg2.connect(host=str(self.pg.socket_dir), port=self.pg.port,
                                user="postgres", dbname="postgres")  # fmt: skip
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE ROLE {DB_USER} SUPERUSER LOGIN PASSWORD %s", (password,))
                cur.execute(f"CREATE DATABASE {DATABASE} OWNER {DB_USER}")
                # The exporter logs in as compose names it, with pg_monitor only (what
                # `db roles --logins` gives pn_exporter_login).
                env = compose_environment("postgres-exporter")
                login = env["DATA_SOURCE_USER"]
                secret = Path(env["DATA_SOURCE_PASS_FILE"]).name
                exporter_password = (self.secrets / secret).read_text().strip()
                cur.execute(f'CREATE ROLE "{login}" LOGIN PASSWORD %s', (exporter_password,))
                cur.execute(f'GRANT pg_monitor TO "{login}"')
        finally:
            conn.close()
        _common.migrate(self.database_url)  # as compose's migrate service: over TLS
        self.redis.start()

    @property
    def database_url(self) -> str:
        """The application's URL (the database_url secret: TLS, verify-full), with the
        driver named as the application names it (app.db.session)."""
        return _common.database_url((self.secrets / "database_url").read_text().strip(), DATABASE)

    def app_env(self, redis_role: str | None = "worker") -> dict[str, str]:
        """compose's application environment: the URLs and the broker signing key as
        secret files; ``redis_role`` picks the Redis user's URL (None: no broker)."""
        secret = {"DATABASE_URL_FILE": "database_url"}
        if redis_role is not None:
            secret["REDIS_URL_FILE"] = f"redis_url_{redis_role}"
            secret["BROKER_SIGNING_KEY_FILE"] = "broker_signing_key"
        return {
            **{name: str(self.secrets / file) for name, file in secret.items()},
            "DRAMATIQ_BROKER": "redis", "TZ": "Asia/Jerusalem",
            "TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER,
            "TWILIO_BASE_URL": self.carrier_url,
            "CALLBACK_PUBLIC_URL": f"http://127.0.0.1:{self.callback_port}",
            "CORE_BANKING_URL": self.bank_url, "BALANCE_SHARDS": "2",
            "BALANCE_CATCHUP_DAYS": "0", "SMS_SEND_WINDOW": "mon-sun 00:00-24:00",
            "SMS_TEMPLATE_LANGUAGE": "he", "DELIVERY_BACKOFF_MINUTES": "0",
            "COLD_STORAGE_DIR": str(self.workdir / "cold"),
            "METRICS_HOST": "127.0.0.1", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
            "PATH": f"{_common.BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": os.environ.get("HOME", "/tmp"),
        }  # fmt: skip

    def start_simulators(self) -> None:
        from app.devtools.simulators.carrier import SimConfig, SimulatorThread
        from app.devtools.simulators.core_banking import CoreBankingConfig, CoreBankingThread

        bank = CoreBankingThread(CoreBankingConfig(seed=7)).start()
        carrier = SimulatorThread(
            SimConfig(account_sid=ACCOUNT, auth_token=TOKEN, sent_after=0.2, delivered_after=0.6)
        ).start()
        self.sims = [bank, carrier]
        self.bank_url, self.carrier_url = bank.base_url, carrier.base_url

    # --- processes -------------------------------------------------------------------------
    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.workdir)
        proc.start()
        self.procs[name] = proc
        return proc

    def _exporter_env(self, service: str) -> dict[str, str]:
        """compose's environment of ``service``: secrets from our folder, hosts on loopback
        (``redis:6379`` in redis:// and rediss:// alike); every other part of a value (the
        TLS parameters) is kept as compose has it."""
        hosts = {"postgres:5432": f"127.0.0.1:{self.pg.port}",
                 "redis:6379": f"127.0.0.1:{self.redis.port}"}  # fmt: skip
        env = {"PATH": os.environ.get("PATH", "")}
        for key, value in compose_environment(service).items():
            value = local_path(value, self.secrets)
            for host, local in hosts.items():
                value = value.replace(host, local)
            env[key] = value
        return env

    def start_exporters(self) -> None:
        p = self.ports
        self._start("postgres-exporter", ["prometheus-postgres-exporter",
                    f"--web.listen-address=127.0.0.1:{p['postgres-exporter']}"],
                    self._exporter_env("postgres-exporter"))  # fmt: skip
        self._start("redis-exporter", ["prometheus-redis-exporter",
                    f"-web.listen-address=127.0.0.1:{p['redis-exporter']}"],
                    self._exporter_env("redis-exporter"))  # fmt: skip
        self.textfile_dir.mkdir(exist_ok=True)
        self.write_backup_textfile()
        self._start("node-exporter", ["prometheus-node-exporter",
                    f"--web.listen-address=127.0.0.1:{p['node-exporter']}",
                    f"--collector.textfile.directory={self.textfile_dir}"],
                    {"PATH": os.environ.get("PATH", "")})  # fmt: skip

    def write_backup_textfile(self) -> None:
        """The backup service's textfile for node_exporter, as its last successful run
        writes it (app/maintenance/backup_metrics.py; the backup tests run that code)."""
        now = int(time.time())
        label = 'stanza="premium"'
        lines = [
            f"pn_backup_last_success_timestamp_seconds{{{label}}} {now}",
            f"pn_backup_age_seconds{{{label}}} 0",
            f"pn_backup_size_bytes{{{label}}} 1048576",
            f"pn_backup_duration_seconds{{{label}}} 12",
            f"pn_backup_last_full_timestamp_seconds{{{label}}} {now}",
            f"pn_backup_sets{{{label}}} 1",
            f"pn_backup_repository_backup_bytes{{{label}}} 524288",
            f'pn_backup_monthly_last_success_timestamp_seconds{{{label},repo="2"}} {now}',
            f"pn_backup_stanza_ok{{{label}}} 1",
            f"pn_backup_last_failure_timestamp_seconds{{{label}}} {now - 86400 * 30}",
            f"pn_backup_wal_last_archived_timestamp_seconds{{{label}}} {now}",
            f"pn_backup_wal_last_failed_timestamp_seconds{{{label}}} {now - 86400 * 30}",
            f"pn_backup_wal_archive_failures{{{label}}} 0",
        ]
        tmp = self.textfile_dir / "pn_backup.prom.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.textfile_dir / "pn_backup.prom")

    def start_app(self) -> None:
        env = self.app_env()  # each its own Redis user and secrets, as compose gives them
        for folder in ("prom-worker", "prom", "prom-callbacks"):  # the image makes its own
            (self.workdir / folder).mkdir(exist_ok=True)
        p, bin_ = self.ports, _common.BIN
        self._start("worker", [str(bin_ / "premium-notify-worker"), "worker.tasks",
                    "--processes", "1", "--threads", "4"],
                    {**env, "METRICS_PORT": str(p["worker"]),
                     "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom-worker")})  # fmt: skip
        # The scheduler without the calendar kicks (scripts/chaos_scheduler.py): the check
        # plays those for its own month.
        self._start("scheduler", [str(bin_ / "periodiq"), "worker.tasks", "chaos_scheduler",
                    "--path", str(_common.ROOT), str(_common.ROOT / "scripts")],
                    {**self.app_env("scheduler"), "SCHEDULER_METRICS_PORT": str(p["scheduler"]),
                     "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom")})  # fmt: skip
        self._start("callbacks", [str(bin_ / "premium-notify"), "serve", "callbacks",
                    "--host", "127.0.0.1", "--port", str(self.callback_port),
                    "--metrics-port", str(p["callbacks"])],
                    {**self.app_env(None),  # no broker, no key (compose)
                     "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "prom-callbacks")},
                    )  # fmt: skip

    def start_monitoring(self) -> None:
        am = self.workdir / "alertmanager"
        am.mkdir(exist_ok=True)
        (am / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(self.webhook.url)))
        self._start("alertmanager", ["prometheus-alertmanager",
                    f"--config.file={am / 'alertmanager.yml'}", f"--storage.path={am / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                    "--cluster.listen-address="], {"PATH": os.environ.get("PATH", "")})  # fmt: skip
        prom = self.workdir / "prometheus"
        rules = copy_rules(prom / "rules", self.for_duration)
        scrape_ports = {k: v for k, v in self.ports.items() if k != "alertmanager"}
        config = loopback_scrape_config(scrape_ports, rules, self.ports["alertmanager"],
                                        self.interval)  # fmt: skip
        (prom / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self._start("prometheus", ["prometheus", f"--config.file={prom / 'prometheus.yml'}",
                    f"--storage.tsdb.path={prom / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.prometheus_port}"],
                    {"PATH": os.environ.get("PATH", "")})  # fmt: skip

    # --- Prometheus' HTTP API --------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        except OSError:  # not listening (yet)
            body = {}
        return body

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        for sim in self.sims:
            sim.stop()
        self.webhook.stop()
        self.redis.stop()
        try:
            self.pg.stop()
        except subprocess.CalledProcessError:
            pass  # already stopped
