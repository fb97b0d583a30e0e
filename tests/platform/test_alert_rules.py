"""Prometheus config, alert rules (promtool check + unit tests), scraped metrics, dashboards.

promtool comes with Debian's ``prometheus`` package; ./scripts/test installs it when it
is missing (scripts/_bootstrap.sh). These tests fail, never skip, without it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.observability import ROOT, promtool, promtool_check_metrics

PROMETHEUS = ROOT / "docker" / "prometheus"
GRAFANA = ROOT / "docker" / "grafana"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*_test.yml"))
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_promtool_check_config_and_rules() -> None:
    result = _promtool("check", "config", PROMETHEUS / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    result = _promtool("check", "rules", *RULE_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_the_alerts() -> None:
    assert RULE_TESTS
    result = _promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def _alerts() -> dict[str, dict[str, Any]]:
    alerts = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
    return alerts


def test_every_alert_has_severity_summary_and_runbook_and_the_runbook_exists() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text().lower()
    for name, rule in _alerts().items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        runbook = rule["annotations"]["runbook"]
        anchor = re.match(r"docs/observability\.md#([a-z0-9-]+) - \S", runbook)
        assert anchor, f"{name}: runbook must be 'docs/observability.md#anchor - what to do'"
        assert f"### {anchor.group(1)}" in doc, (
            f"{name}: docs/observability.md has no section for #{anchor.group(1)}"
        )


def test_the_issue_and_seed_alerts_all_exist() -> None:
    required = {
        # seed section 11
        "PostgresDiskUsageHigh", "PostgresReplicationLagHigh", "PostgresSlowQuery",
        "PostgresConnectionsNearLimit", "PostgresDeadlock", "BackupMissing",
        # the application's
        "BalanceRunLate", "MissingDataCustomersHigh", "QualificationLate", "DeliveryRateLow",
        "CarrierErrorRateHigh", "DeadLetterQueueNotEmpty", "QueueBacklogOld", "NoWorkerUp",
        "ReconcilerFoundStuckRows",
    }  # fmt: skip
    assert required <= set(_alerts())
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    tested.add(check["alertname"])
    assert required <= tested, f"alerts without a firing unit test: {required - tested}"


def test_promtool_check_metrics_on_a_full_exporter_output(tmp_path: Path) -> None:
    """Every metric the system defines, with a sample, through the multiprocess exporter."""
    import subprocess as sp
    import sys

    from tests.support.observability import subprocess_env

    script = (
        "import worker\n"
        "from prometheus_client import generate_latest\n"
        "from app.observability import metrics\n"
        "from app.observability.exporter import build_registry\n"
        "from app.observability.multiprocess import current\n"
        "from prometheus_client import Counter, Gauge, Histogram\n"
        "for obj in vars(metrics).values():\n"
        "    if isinstance(obj, Counter | Gauge | Histogram):\n"
        "        m = obj.labels(*['x'] * len(obj._labelnames)) if obj._labelnames else obj\n"
        "        (m.observe(1) if isinstance(obj, Histogram) else m.inc() if isinstance(obj, Counter) else m.set(1))\n"  # noqa: E501
        "print(generate_latest(build_registry(current()[1])).decode())\n"
    )
    env = subprocess_env(PN_PROCESS_ROLE="worker", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    result = sp.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "pn_carrier_request_seconds_bucket" in result.stdout
    promtool_check_metrics(result.stdout)


def test_metric_names_in_rules_and_dashboards_exist() -> None:
    """A typo in a rule or a panel would silently show nothing: every pn_* name is defined."""
    from tests.support.observability import PN_LABELS, defined_metric_names

    defined = defined_metric_names()
    text = " ".join(p.read_text() for p in [*RULE_FILES, *DASHBOARDS])
    used = set(re.findall(r"\bpn_[a-z0-9_]+", text)) - PN_LABELS
    assert used <= defined, f"unknown metrics: {sorted(used - defined)}"


# --- Grafana ---------------------------------------------------------------------------


def test_grafana_provisioning_files() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert datasources["apiVersion"] == 1
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == "prometheus"
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "premium-notify.yml").read_text()
    )
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    # compose mounts ./grafana/dashboards at the provider's path
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert any(m.endswith(":" + provider["options"]["path"] + ":ro") for m in mounts)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_dashboard_is_valid_grafana_json(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 30
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    targets = 0
    for panel in board["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "prometheus"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]
            targets += 1
    assert targets >= 10


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every panel query (as a recording rule), Grafana variables replaced."""
    rules = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for i, target in enumerate(panel.get("targets", [])):
                expr = (
                    target["expr"]
                    .replace("$__rate_interval", "5m")
                    .replace("$__range", "1d")
                    .replace("$__interval", "1m")
                )
                rules.append({"record": f"dashboard:{path.stem}:{panel['id']}_{i}", "expr": expr})
    rule_file = tmp_path / "dashboard_queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = _promtool("check", "rules", rule_file)
    assert result.returncode == 0, result.stdout + result.stderr
