"""What the live monitoring check reads from the shipped files: the rules (a copy with
short ``for:``), every expression of the rules and of the Grafana panels, the vector
selectors inside an expression, and the scrape configuration rewritten to loopback.

Nothing here edits a shipped file: copies go to the check's work folder.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
RULES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "docker" / "grafana" / "dashboards").glob("*.json"))
# Grafana's variables, as Grafana would substitute them for a short range.
SLOW_JOBS = {"postgres": "3s"}
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


@dataclass(frozen=True)
class Expr:
    origin: str  # "rules/pipeline.yml: alert BalanceRunLate", "pipeline.json: panel ..."
    text: str


def rule_exprs() -> list[Expr]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = f"alert {rule['alert']}" if "alert" in rule else f"record {rule['record']}"
                out.append(Expr(f"rules/{path.name}: {kind}", str(rule["expr"])))
    return out


def panel_exprs() -> list[Expr]:
    out: list[Expr] = []

    def walk(name: str, panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets") or []:
                text = str(target.get("expr", ""))
                for variable, value in GRAFANA_VARIABLES.items():
                    text = text.replace(variable, value)
                if text:
                    out.append(Expr(f"{name}: panel {panel['title']!r}", text))
            walk(name, panel.get("panels") or [])

    for path in DASHBOARDS:
        walk(path.name, json.loads(path.read_text())["panels"])
    return out


def copy_rules(target: Path, for_duration: str) -> list[Path]:
    """The shipped rule files with every ``for:`` set to ``for_duration`` (the test's copy)."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in RULES:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = for_duration
        out = target / path.name
        out.write_text(yaml.safe_dump(doc, sort_keys=False))
        written.append(out)
    return written


_LABELS = re.compile(r"\{[^{}]*\}")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?")
_WORD = re.compile(r"[A-Za-z_:][\w:]*")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}


def selectors(expr: str) -> list[str]:
    """The vector selectors of a PromQL expression (``name{matchers}`` or ``{matchers}``)."""
    braces: list[str] = []

    def keep(match: re.Match[str]) -> str:
        braces.append(match.group(0))
        return f" __BRACE{len(braces) - 1}__ "

    text = _LABELS.sub(keep, expr)
    text = _STRING.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    found: list[str] = []
    attached: set[int] = set()
    for match in _WORD.finditer(text):
        word, end = match.group(0), match.end()
        if word.startswith("__BRACE"):
            index = int(word[7:-2])
            if index not in attached:
                found.append(braces[index])  # a selector without a metric name
            continue
        rest = text[end:].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function or an aggregation, or an operator word
        if rest.startswith("__BRACE"):
            index = int(rest[7 : rest.index("__", 7)])
            attached.add(index)
            found.append(word + braces[index])
        else:
            found.append(word)
    return found


def metric_name(selector: str) -> str | None:
    name = selector.split("{", 1)[0].strip()
    if name:
        return name
    match = re.search(r'__name__\s*=\s*"([^"]+)"', selector)
    return match.group(1) if match else None


def loopback_scrape_config(
    ports: dict[str, int], rule_files: list[Path], alertmanager: int, interval: str
) -> dict[str, Any]:
    """docker/prometheus/prometheus.yml with the same jobs, labels and relabelling, every
    target host (and every DNS name) rewritten to 127.0.0.1 and the port the check runs
    it on; DNS names nothing runs for resolve to nothing (no target), as in Docker."""
    config: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=interval, evaluation_interval=interval)
    config["rule_files"] = [str(p) for p in rule_files]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [f"127.0.0.1:{alertmanager}"]}]}
    ]
    for job in config["scrape_configs"]:
        # postgres_exporter (v0.11) takes a second to answer pg_up 0 when the server is
        # down: its scrape needs a longer timeout than one interval of 1 s.
        job["scrape_interval"] = SLOW_JOBS.get(job["job_name"], interval)
        job["scrape_timeout"] = job["scrape_interval"]
        static = []
        for sd in job.pop("dns_sd_configs", []):
            for name in sd["names"]:
                if name in ports:  # what DNS SD would add: __meta_dns_name
                    target = f"127.0.0.1:{ports[name]}"
                    static.append({"targets": [target], "labels": {"__meta_dns_name": name}})
        for entry in job.pop("static_configs", []):
            targets = []
            for target in entry["targets"]:
                host = target.rsplit(":", 1)[0]
                if host not in ports:
                    raise KeyError(f"job {job['job_name']}: nothing runs for {target}")
                targets.append(f"127.0.0.1:{ports[host]}")
            static.append({**entry, "targets": targets})
        job["static_configs"] = static
    return config


def alertmanager_config(webhook_url: str) -> dict[str, Any]:
    """docker/alertmanager/alertmanager.yml, its receivers pointed at the check's webhook
    and its timers short (the routing tree and grouping stay as shipped)."""
    path = ROOT / "docker" / "alertmanager" / "alertmanager.yml"
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1m")
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
    return config
