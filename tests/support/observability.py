"""Helpers of the observability tests: free ports, scraping, promtool, PII checks."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# Label names that would mean personal data is being used as a label.
FORBIDDEN_LABEL_NAMES = re.compile(
    r"phone|msisdn|e164|email|balance|amount|body|account|customer|recipient|"
    r"^(name|first_name|last_name|full_name|to|from|text|message)$",
    re.I,
)
_PII_VALUE = re.compile(r"\+?\d[\d\- ]{7,}\d|[\w.+-]+@[\w-]+\.[a-z]{2,}|Decimal\(", re.I)


def promtool() -> str:
    binary = shutil.which("promtool")
    assert binary, (
        "promtool is missing: ./scripts/test installs it (Debian package 'prometheus'); "
        "or apt-get install prometheus"
    )
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, timeout: float = 30.0, want: str | None = None) -> str:
    """GET /metrics until it answers (and contains ``want``, if given)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as r:
                last = r.read().decode()
            if want is None or want in last:
                return last
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"no /metrics{' with ' + want if want else ''} on {port}:\n{last}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        v
        for (n, lbls), v in samples(text).items()
        if n == name and set(labels.items()) <= set(lbls)
    )


def promtool_check_metrics(text: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), f"promtool check metrics lint: {result.stdout}"


def assert_no_personal_data(text: str) -> None:
    """No label name that names personal data; no label value that looks like it."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            for label, val in s.labels.items():
                if label == "le" or label == "quantile":
                    continue
                assert not FORBIDDEN_LABEL_NAMES.search(label), f"{s.name}: label {label!r}"
                assert not _PII_VALUE.search(val), f"{s.name}{{{label}={val!r}}}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db"):
        env.pop(name, None)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["METRICS_HOST"] = "127.0.0.1"
    env.update(extra)
    return env


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


# Label names that start with pn_ (not metric names).
PN_LABELS = frozenset({"pn_job"})


def defined_metric_names() -> set[str]:
    """Every series name the system exports: app/observability/metrics.py (with the
    _total/_bucket/... suffixes), the scheduler's job_runs gauges and the backup job's
    textfile gauges (app/maintenance/backup_metrics.py)."""
    import app.observability.metrics as metrics
    from app.observability.job_runs import FAMILIES, PENDING

    defined: set[str] = set()
    for obj in vars(metrics).values():
        name = getattr(obj, "_name", None)
        kind = getattr(obj, "_type", None)
        if not name:
            continue
        defined.add(name)
        if kind == "counter":
            defined.add(f"{name}_total")
        if kind == "histogram":
            defined |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    defined |= {name for name, _, _ in FAMILIES} | {PENDING}
    backup = (ROOT / "app" / "maintenance" / "backup_metrics.py").read_text()
    defined |= set(re.findall(r'"(pn_backup_[a-z0-9_]+)"', backup))
    return defined
