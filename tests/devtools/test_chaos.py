"""The chaos run, small: its own PostgreSQL and Redis, two real workers, the scheduler,
both simulators; SIGKILLs, FLUSHALL, a PostgreSQL restart, carrier faults and a short
outage. Every invariant must hold (scripts/chaos.py exits 1 otherwise)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_chaos_run_keeps_every_invariant(tmp_path: Path) -> None:
    report = tmp_path / "chaos.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), "--customers", "150",
         "--outage", "8", "--phase-timeout", "240", "--report", str(report)],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert report.exists(), output[-4000:]
    table = report.read_text(encoding="utf-8")
    faults = re.findall(r"^\| (balances|sms) \| ([^|]+) \|", table, re.M)
    kinds = {name.strip() for _, name in faults}
    assert {"SIGKILL worker", "Redis FLUSHALL", "PostgreSQL restart", "carrier outage"} <= kinds
    verdicts = re.findall(r"^\| ([^|]+) \| (yes|NO) \|", table, re.M)
    assert len(verdicts) >= 8, table
    failed = [name for name, held in verdicts if held != "yes"]
    assert failed == [], table
    assert result.returncode == 0, output[-4000:]


# --- regressions the chaos run found -------------------------------------------------


class _ReconcilerStrikesWhileWaiting:
    """A rate limiter whose first wait lasts past the reconciler's delay, during which
    the reconciler runs (as it does on another worker): the situation of a claimed row
    waiting behind the limiter and the carrier's backoffs in the chaos run."""

    def __init__(self, carrier: object, delay: float) -> None:
        self.carrier, self.delay, self.done = carrier, delay, False

    def try_acquire(self, segments: int) -> float:
        if not self.done:
            self.done = True
            import time

            from app.db.session import session_scope
            from app.notifications.reconcile import reconcile_outbox

            time.sleep(self.delay)
            self.requeued = reconcile_outbox(session_scope, self.carrier).requeued  # type: ignore[arg-type]
        return 0.0


def test_a_row_the_reconciler_took_back_is_not_sent_twice(
    session: object, sms_env: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.config import get_settings
    from app.db.session import session_scope
    from app.months import Month
    from app.notifications.outbox import prepare_month
    from app.notifications.sending import Sender
    from tests.support.carrier import MONTH, client_for, outbox, qualified_customers

    monkeypatch.setenv("SMS_RECONCILE_SENDING_AFTER_SECONDS", "1")
    monkeypatch.setenv("SMS_RECONCILE_QUEUED_AFTER_SECONDS", "3600")
    get_settings.cache_clear()
    [phone] = qualified_customers(session, 1)  # type: ignore[arg-type]
    with session_scope() as s:
        [batch] = prepare_month(s, Month.of(MONTH)).batches
    limiter = _ReconcilerStrikesWhileWaiting(client_for(sms_env), delay=1.3)  # type: ignore[arg-type]
    outcome = Sender(client_for(sms_env), limiter).send_batch(session_scope, batch)  # type: ignore[arg-type]
    # The reconciler found nothing at the carrier and queued the row again; the waiting
    # worker did not send its stale claim, then claimed the queued row afresh and sent
    # it: one message (without the renewed claim: two).
    assert limiter.requeued == 1
    assert (outcome.submitted, outcome.conflicts) == (1, 1)
    assert sms_env.state.per_recipient() == {phone: 1}  # type: ignore[attr-defined]
    assert [r.submission_status for r in outbox(session)] == ["Submitted"]  # type: ignore[arg-type]
