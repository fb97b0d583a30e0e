"""No personal data or secret leaves the system through logs, metrics or Sentry.

A demo run (``premium-notify demo``: generated customers, balance checks, qualification,
SMS, delivery tracking through the production actors) runs in a child process with
every log record at DEBUG formatted by the project's formatter, Sentry initialised
with a transport that records every envelope, and the Prometheus registry dumped at
the end. After the month, a poisoned (signed) message carrying a customer's phone number where a
batch id belongs is sent to a real worker, whose argument check refuses it with an error
line, so Sentry and the error log have something personal to leak.
Then every customer's phone number (three spellings), names, e-mail and every stored
balance of the month are searched for in all of it, and so are the secrets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
SENTRY_KEY = "f00dfacecafe4badbeef0123456789ab"
CB_TOKEN = "cb-secret-7c1e9a5d2b"
TWILIO_TOKEN = "tw-secret-0b9d4e1f77"

PROBE = r"""
import io, json, logging, sys
from pathlib import Path
out, dbname = Path(sys.argv[1]), sys.argv[2]
from app.observability.logging import configure_logging
stream = io.StringIO()
configure_logging("DEBUG", json_format=True, stream=stream)
from sentry_sdk.transport import Transport
envelopes = []
class Recording(Transport):
    def capture_envelope(self, envelope):
        envelopes.append(envelope.serialize().decode("utf-8", "replace"))
from app.observability.sentry import init_sentry
import os
dsn = "https://%s@sentry.invalid/1" % os.environ["PROBE_SENTRY_KEY"]
assert init_sentry(transport=Recording(), dsn=dsn)
from app.cli.main import cli
cli(["demo", "--customers", "40", "--seed", "5", "--threads", "2", "--database-name",
     dbname, "--delivery-timeout", "20", "--workdir", str(out / "demo")],
    standalone_mode=False)
# A poisoned message: a phone number where a batch id belongs (a bad producer).
import dramatiq, sqlalchemy
from worker import tasks
url = sqlalchemy.engine.make_url(__import__("os").environ["DATABASE_URL"]).set(database=dbname)
with sqlalchemy.create_engine(url).connect() as conn:
    phone = conn.scalar(sqlalchemy.text(
        "SELECT phone_number FROM customers WHERE phone_number LIKE '+9725%' LIMIT 1"))
import os
from app.config import get_settings
os.environ.update(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN=os.environ["PROBE_TW"],
                  TWILIO_FROM="+15005550006", TWILIO_BASE_URL="http://127.0.0.1:9")
get_settings.cache_clear()
worker = dramatiq.Worker(tasks.broker, worker_threads=1, worker_timeout=100)
worker.start()
# Signed, so only the argument check stands between it and the actor (worker/signing.py).
from worker.signing import sign
tasks.broker.enqueue(sign(dramatiq.Message(queue_name="sms", actor_name="notifications.send_batch",
                                           args=(phone,), kwargs={}, options={"max_retries": 0})))
tasks.broker.join("sms", fail_fast=False)
worker.join()
worker.stop()
import sentry_sdk
sentry_sdk.flush(5)
from prometheus_client import REGISTRY, generate_latest
(out / "metrics.txt").write_bytes(generate_latest(REGISTRY))
(out / "logs.txt").write_text(stream.getvalue(), "utf-8")
(out / "sentry.json").write_text(json.dumps(envelopes), "utf-8")
(out / "poison.txt").write_text(phone, "utf-8")
"""


def needles_of(phones: list[str | None]) -> list[str]:
    """Each phone as E.164, without its '+', and in national form (0 + the rest)."""
    out: list[str] = []
    for phone in phones:
        if phone:
            out += [phone, phone[1:], "0" + phone[4:]]
    return out


def _label_values(exposition: str) -> list[str]:
    return re.findall(r'="((?:[^"\\]|\\.)*)"', exposition)


@pytest.mark.slow
def test_demo_run_leaks_no_personal_data_or_secrets(database_url: str, tmp_path: Path) -> None:
    dbname = f"pn_security_{os.getpid()}"
    env = {**os.environ, "CORE_BANKING_API_TOKEN": CB_TOKEN, "LOG_LEVEL": "DEBUG",
           "DRAMATIQ_BROKER": "stub", "PROBE_SENTRY_KEY": SENTRY_KEY,
           "PROBE_TW": TWILIO_TOKEN}  # fmt: skip
    # Secrets come from the environment, as in production (Sentry events carry sys.argv).
    for name in ("TWILIO_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "SENTRY_DSN",
                 "CORE_BANKING_URL"):  # fmt: skip
        env.pop(name, None)  # the demo's own simulators
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path), dbname],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    url = make_url(database_url).set(database=dbname)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            people = conn.execute(
                text("SELECT phone_number, first_name, last_name, email FROM customers")
            ).all()
            balances = conn.scalars(
                text("SELECT DISTINCT balance FROM daily_balance_checks WHERE abs(balance) >= 100")
            ).all()
            sent = conn.scalar(text("SELECT count(*) FROM notifications"))
    finally:
        engine.dispose()
        admin = psycopg2.connect(url.set(drivername="postgresql", database="postgres")
                                 .render_as_string(hide_password=False))  # fmt: skip
        admin.autocommit = True
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()

    logs = (tmp_path / "logs.txt").read_text("utf-8")
    envelopes = json.loads((tmp_path / "sentry.json").read_text("utf-8"))
    metrics = (tmp_path / "metrics.txt").read_text("utf-8")
    labels = "\n".join(_label_values(metrics))
    poison = (tmp_path / "poison.txt").read_text("utf-8")
    # The run really exercised every path the search covers.
    assert len(people) >= 30 and sent and len(balances) > 100
    assert logs.count("\n") > 50 and "notifications.send_batch" in logs
    assert envelopes, "the failing actor produced no Sentry event"
    assert any("notifications.send_batch" in e for e in envelopes)
    assert poison in {p.phone_number for p in people}
    assert {"create", "Delivered"} <= set(labels.split("\n"))  # carrier and delivery metrics

    needles = needles_of([p.phone_number for p in people])
    for p in people:
        needles += [v for v in (p.email,) if v]
        needles += [v for v in (p.first_name, p.last_name) if v and len(v) >= 3]
    word = re.compile(
        "|".join(rf"(?<![\w+]){re.escape(n)}(?!\w)" for n in sorted(set(needles), key=len)[::-1])
    )
    money = re.compile(
        "|".join(rf"(?<![\d.]){re.escape(f'{b:.2f}')}(?!\d)" for b in balances)
    )
    # The DSN's public key is in every envelope's header by design; elsewhere it is not.
    shared = [CB_TOKEN, TWILIO_TOKEN, "simulator-token"]
    # Positive controls: the patterns do find the values they look for.
    assert word.search(f"to {people[0].phone_number}.") and money.search(f"= {balances[0]:.2f}")
    secrets = {"logs": [*shared, SENTRY_KEY], "sentry": shared, "labels": [*shared, SENTRY_KEY]}
    for name, haystack in (("logs", logs), ("sentry", "\n".join(envelopes)), ("labels", labels)):
        assert not word.findall(haystack), f"personal data in {name}: {word.findall(haystack)[:5]}"
        assert not money.findall(haystack), f"a balance in {name}: {money.findall(haystack)[:5]}"
        assert not [s for s in secrets[name] if s in haystack], f"a secret in {name}"
