"""A process killed (SIGKILL) in the middle of a shard loses nothing: the redelivered
shard resumes after the last committed batch and every customer ends up checked once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy.orm import Session

from app.balances.day import start_day
from app.balances.shards import run_shard
from app.balances.sources.core_banking import CoreBankingSource
from app.db.session import session_scope
from app.devtools.simulators.core_banking import CoreBankingThread
from tests.balances.helpers import DAY, checks_by_account, make_customers
from tests.support.db import count

CHILD = """
import sys, uuid
from app.balances.shards import run_shard
from app.balances.sources.core_banking import CoreBankingSource
from app.db.session import session_scope
run_shard(
    session_scope, uuid.UUID(sys.argv[1]), 0, source=CoreBankingSource(sys.argv[2]), batch_size=5
)
"""


def test_killed_shard_resumes_without_loss_or_duplicates(
    session: Session, core_banking: CoreBankingThread
) -> None:
    customers = make_customers(session, 40)
    with session_scope() as s:
        info = start_day(s, DAY, shard_count=1)
    core_banking.config.latency = 0.25  # 8 batches: about 2 s for the whole shard
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(info.run_id), core_banking.base_url],
        env=os.environ.copy(),
    )
    try:
        deadline = time.monotonic() + 30
        while count(session, "SELECT count(*) FROM daily_balance_checks") < 10:
            assert child.poll() is None, "the shard finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    written = count(session, "SELECT count(*) FROM daily_balance_checks")
    assert 10 <= written < 40
    assert count(session, "SELECT count(*) FROM job_runs WHERE finished_at IS NULL") == 1
    # The message comes back (Dramatiq redelivers after the heartbeat timeout).
    core_banking.config.latency = 0.0
    outcome = run_shard(
        session_scope, info.run_id, 0, source=CoreBankingSource(core_banking.base_url)
    )
    assert outcome.finished_run is True
    assert outcome.stats["inserted"] == 40 - written
    assert outcome.stats["checked"] == 40 and outcome.stats["missing"] == 0
    assert set(checks_by_account(session)) == {c.account_number for c in customers}
    assert count(session, "SELECT count(*) FROM audit_log WHERE entity_type = 'BalanceCheck'") == 40
    assert count(
        session, "SELECT attempts FROM job_shards WHERE run_id = :r", r=info.run_id
    ) == 2
