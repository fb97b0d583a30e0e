"""The live monitoring check, short variant (scripts/monitoring_check.py --short).

Real Prometheus, Alertmanager and exporters (Debian packages that ./scripts/test
installs), a private PostgreSQL 15 and Redis, a real worker, scheduler and callback
receiver, a short month and four induced faults; see the script's docstring for what it
asserts. Everything it starts, it stops.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from monitoring_stack import missing_programs  # noqa: E402

MISSING = missing_programs()


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"the Debian programs of the live check are not installed: {', '.join(MISSING)} "
    "(./scripts/test installs them as root with apt-get)",
)
def test_the_monitoring_works_end_to_end() -> None:
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")}  # fmt: skip
    result = subprocess.run(
        # Its own work folder under /tmp (the cluster's OS user must reach it), removed
        # at the end.
        [sys.executable, str(ROOT / "scripts" / "monitoring_check.py"), "--short"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for alert in ("JobFailed", "NotificationsStuckSending", "PostgresDown", "NoWorkerUp"):
        assert f"{alert} " in output and "reached the webhook" in output, output
    assert "monitoring check passed" in output
