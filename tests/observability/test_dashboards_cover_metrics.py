"""Every exported metric family is on a Grafana panel, or listed as internal with a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

from app.observability.metrics import INTERNAL
from tests.support.observability import defined_metric_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "docker" / "grafana" / "dashboards").glob("*.json"))
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _panel_exprs() -> list[str]:
    exprs: list[str] = []

    def walk(panels: list[dict[str, object]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []) or []:  # type: ignore[union-attr]
                exprs.append(str(target.get("expr", "")))  # type: ignore[union-attr]
            walk(panel.get("panels", []) or [])  # type: ignore[arg-type]

    for path in DASHBOARDS:
        walk(json.loads(path.read_text())["panels"])
    return exprs


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_every_exported_metric_is_on_a_dashboard_or_internal() -> None:
    families = {_family(n) for n in defined_metric_names()}
    on_panels = {_family(n) for e in _panel_exprs() for n in re.findall(r"\bpn_[a-z0-9_]+", e)}
    missing = sorted(families - on_panels - set(INTERNAL))
    assert not missing, f"exported but on no dashboard panel (nor metrics.INTERNAL): {missing}"


def test_internal_metrics_exist_and_have_a_reason() -> None:
    families = {_family(n) for n in defined_metric_names()}
    assert set(INTERNAL) <= families, sorted(set(INTERNAL) - families)
    assert all(reason.strip() for reason in INTERNAL.values())


def test_the_issue_s_metrics_are_on_panels() -> None:
    text = " ".join(_panel_exprs())
    for name in (
        "pn_delivery_carrier_calls_total",
        "pn_retention_rows_total",
        "pn_phones_revalidated_total",
        "pn_build_info",
        "pn_backup_size_bytes",
    ):
        assert name in text, name
