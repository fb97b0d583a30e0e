"""The demo end to end (a short variant of ``./scripts/demo``), run twice in a row.

The command runs as a subprocess, as an operator runs it: its own core-banking
simulator, in-process broker and Dramatiq workers, a fresh database on the test server.
The carrier is a Twilio-compatible simulator owned by this test (configured through
TWILIO_*), so the messages that really reached "the carrier" are counted here, not
taken from the demo's own report. Expected outcomes are recomputed independently from
the generator and the simulator's deterministic balances.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from app.config import PROJECT_ROOT
from app.devtools.demo.customers import PhoneKind, composition, generate
from app.devtools.demo.environment import DEMO_MISSING_RATE, DEMO_PROFILES
from app.devtools.simulators.carrier import SimConfig, SimulatorThread
from app.devtools.simulators.core_banking import balance_for, is_missing
from app.months import Month
from app.phones import classify

CUSTOMERS = 60
SEED = 3
MONTH = Month(2025, 2)
DAYS = [MONTH.first + timedelta(days=i) for i in range(MONTH.days)]
THRESHOLD = Decimal("15000.00")
SID, TOKEN = "AC" + "7" * 32, "demo-test-token"


@pytest.fixture
def carrier() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(
        SimConfig(account_sid=SID, auth_token=TOKEN, sent_after=0.2, delivered_after=0.6)
    ).start()
    yield sim
    sim.stop()


@pytest.fixture
def demo_db(database_url: str) -> Iterator[tuple[str, Engine]]:
    name = f"pn_demo_test_{os.getpid()}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    engine = create_engine(url)
    yield name, engine
    engine.dispose()
    import psycopg2

    admin = make_url(database_url).set(drivername="postgresql", database="postgres")
    conn = psycopg2.connect(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _run_demo(
    database_url: str, name: str, carrier: SimulatorThread, workdir: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "CORE_BANKING_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        DATABASE_URL=database_url,
        DRAMATIQ_BROKER="stub",
        TWILIO_ACCOUNT_SID=SID,
        TWILIO_AUTH_TOKEN=TOKEN,
        TWILIO_BASE_URL=carrier.base_url,
        TWILIO_FROM="PremiumBank",
    )
    command = [sys.executable, "-m", "app.cli.main", "demo", "--database-name", name]
    command += ["--workdir", str(workdir), "--delivery-timeout", "40", *extra]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def _expected() -> dict[str, bool]:
    """Account -> qualified, for every customer that must be evaluated (independent)."""
    expected: dict[str, bool] = {}
    for c in generate(CUSTOMERS, SEED):
        if not c.is_active:
            continue  # never checked (a malformed number still is: INVALID_PHONE)
        if is_missing(SEED, c.account_number, DEMO_MISSING_RATE):
            continue  # the bank does not know the account: no check, not evaluated
        every_day = all(
            balance_for(SEED, c.account_number, d, DEMO_PROFILES) >= THRESHOLD for d in DAYS
        )
        expected[c.account_number] = every_day and c.phone_kind is PhoneKind.MOBILE
    return expected


def _rows(engine: Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), {"first": MONTH.first}))


def _check_invariants(engine: Engine, carrier: SimulatorThread) -> dict[str, bool]:
    expected = _expected()
    # One check per day for every active customer the bank knows; none for the others.
    per_customer = {
        r.account_number: (r.checks, r.days)
        for r in _rows(
            engine,
            "SELECT c.account_number, count(d.id) AS checks, "
            "count(DISTINCT d.check_date) AS days FROM customers c "
            "LEFT JOIN daily_balance_checks d ON d.customer_id = c.id GROUP BY 1",
        )
    }
    for account, (checks, days) in per_customer.items():
        wanted = MONTH.days if account in expected else 0
        assert (checks, days) == (wanted, wanted), account
    assert set(expected) <= set(per_customer)

    # Qualifications equal the independent recomputation.
    decided = {
        r.account_number: r.qualified
        for r in _rows(
            engine,
            "SELECT c.account_number, mq.qualified FROM monthly_qualifications mq "
            "JOIN customers c ON c.id = mq.customer_id WHERE mq.qualification_month = :first",
        )
    }
    assert decided == expected
    assert any(expected.values()) and not all(expected.values())

    # Exactly one message per qualified customer reached the carrier.
    phones = {
        r.account_number: r.phone_number
        for r in _rows(engine, "SELECT account_number, phone_number FROM customers")
    }
    wanted_recipients = {phones[a]: 1 for a, ok in expected.items() if ok}
    assert carrier.state.per_recipient() == wanted_recipients

    # Every notification is final: submitted with a final delivery status.
    open_rows = _rows(
        engine,
        "SELECT n.id FROM notifications n WHERE n.submission_status <> 'Submitted' "
        "OR NOT EXISTS (SELECT 1 FROM delivery_status ds "
        "WHERE ds.notification_id = n.id AND ds.final_status)",
    )
    assert open_rows == []
    return expected


def test_demo_runs_the_month_twice_with_the_same_outcome(
    database_url: str,
    demo_db: tuple[str, Engine],
    carrier: SimulatorThread,
    tmp_path: Path,
) -> None:
    name, engine = demo_db
    summaries = []
    for run in (1, 2):
        carrier.state.reset()
        out = tmp_path / f"summary{run}.json"
        done = _run_demo(
            database_url, name, carrier, tmp_path, "--customers", str(CUSTOMERS),
            "--seed", str(SEED), "--month", str(MONTH), "--summary-json", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "send window always open" in done.stdout
        expected = _check_invariants(engine, carrier)
        summaries.append(json.loads(out.read_text("utf-8")))
        engine.dispose()  # the next run drops and recreates the database

    first, second = summaries
    assert first["report"] == second["report"]
    assert first["funnel"] == second["funnel"]
    qualified = sum(expected.values())
    assert first["report"]["qualified"] == qualified
    assert first["report"]["sms_sent"] == first["report"]["delivered"] == qualified
    generated = composition(generate(CUSTOMERS, SEED))
    assert first["generated"] == generated
    # No customer is dropped for a phone number: malformed ones are imported, with a
    # warning each (as are landlines and missing numbers), and nothing is rejected.
    assert first["imported"]["rejected"] == first["imported"]["skipped"] == 0
    assert first["imported"]["accepted"] == generated["customers"]
    assert first["imported"]["warnings"] >= generated["malformed"] + generated["landline"]
    rejects = (tmp_path / "customers.rejects.csv").read_text("utf-8")
    assert rejects.count("\n") == 1  # the header only


def test_generated_numbers_are_what_they_claim_to_be() -> None:
    customers = generate(400, seed=5)
    assert generate(400, seed=5) == customers  # deterministic
    statuses = {
        PhoneKind.MOBILE: "MOBILE",
        PhoneKind.LANDLINE: "NOT_MOBILE",
        PhoneKind.MALFORMED: "INVALID",
        PhoneKind.MISSING: "MISSING",
    }
    for c in customers:
        assert classify(c.phone_number, "IL").status == statuses[c.phone_kind]
    shares = composition(customers)
    assert shares["hebrew_names"] and shares["hebrew_names"] < 400
    assert all(shares[k] for k in ("landline", "malformed", "no_number", "inactive"))
    assert len({c.account_number for c in customers}) == 400


def test_demo_refuses_a_month_that_is_not_closed(
    database_url: str, carrier: SimulatorThread, tmp_path: Path
) -> None:
    done = _run_demo(database_url, "pn_demo_never_created", carrier, tmp_path, "--month", "2999-01")
    assert done.returncode == 2
    assert "not closed" in done.stderr
