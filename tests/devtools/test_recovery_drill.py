"""The recovery drill's short variant: ``./scripts/recovery-drill --short``.

Point-in-time restore (state at the target equal table by table, audit trail intact, a
GDPR erasure re-applied before the database is opened) and failover (standby promoted,
real workers carry on through the multi-host URL), on the drill's own PostgreSQL 15
clusters with WAL archived by pgBackRest; RPO and RTO within the seed's targets. The full
drill (production's archive_timeout, 10,000 customers) is run by hand: docs/operations.md.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG15 = Path("/usr/lib/postgresql/15/bin/postgres")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.skipif(
    not PG15.exists() and os.geteuid() != 0, reason="needs PostgreSQL 15 (installed as root)"
)
def test_short_drill_restores_to_a_time_fails_over_and_meets_the_targets() -> None:
    done = subprocess.run(
        [str(ROOT / "scripts" / "recovery-drill"), "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    rpo = float(re.search(r"^RPO: ([\d.]+) s", out, re.M).group(1))  # type: ignore[union-attr]
    rto = float(re.search(r"^RTO: ([\d.]+) s", out, re.M).group(1))  # type: ignore[union-attr]
    failover = float(re.search(r"^failover: ([\d.]+) s", out, re.M).group(1))  # type: ignore[union-attr]
    assert rpo < 3600 and rto < 300 and failover < 30
    assert rpo <= 2 * 10  # bounded by the short run's archive_timeout (10 s), with slack
    assert "tables equal to the target state" in out
    # The restored database holds the audit chain heads recorded with its backup (the
    # drill's audit verify --heads is one of its checks: a mismatch fails the drill).
    assert re.search(r"[1-9]\d* audit chain head\(s\) recorded with it", out), out[-4000:]
    assert "1 re-applied" in out
    assert "FAILED" not in out
    assert "drill passed" in out
