"""Every setting is validated when a process starts: CLI, workers and scheduler alike.

A bad value fails at start with one line that names the setting and says what is wrong
(never a traceback, never a secret), not later at send or schedule time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import PROJECT_ROOT, Settings
from app.config_checks import check_cron, describe_invalid

SECRET = "hunter2-very-secret"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SMS_SEND_WINDOW", "mon 25:00-26:00", "SMS_SEND_WINDOW: cannot read"),
        ("SMS_SEND_WINDOW", "someday 09:00-10:00", "SMS_SEND_WINDOW: unknown day"),
        ("SMS_SEND_WINDOW", " ; ", "SMS_SEND_WINDOW: no rule"),
        ("DELIVERY_POLL_CRON", "*/3 * * *", "DELIVERY_POLL_CRON: a cron spec has 5 fields"),
        ("DELIVERY_POLL_CRON", "61 * * * *", "DELIVERY_POLL_CRON: minute 61 is outside 0-59"),
        ("DELIVERY_POLL_CRON", "@often", "DELIVERY_POLL_CRON: unknown cron alias"),
        ("QUALIFICATION_KICK_DAYS", "0", "QUALIFICATION_KICK_DAYS: day of month 0"),
        ("QUALIFICATION_KICK_DAYS", "3-1", "QUALIFICATION_KICK_DAYS: day of month range"),
        ("QUALIFICATION_KICK_TIME", "6:30", "QUALIFICATION_KICK_TIME: expected a local time"),
        ("BALANCE_KICK_TIME", "01:30", "BALANCE_KICK_TIME: choose 03:00 or later"),
        ("RETENTION_KICK_TIME", "25:00", "RETENTION_KICK_TIME: expected a local time"),
        ("BANK_TIMEZONE", "Mars/Base", "BANK_TIMEZONE: unknown time zone 'Mars/Base'"),
        ("DEFAULT_PHONE_REGION", "XX", "DEFAULT_PHONE_REGION: 'XX' is not a phone region"),
        ("SMS_TEMPLATE_LANGUAGE", "fr", "SMS_TEMPLATE_LANGUAGE: choose he or en"),
        ("SMS_MAX_SEGMENTS", "1", "SMS_TEMPLATE_HE: template 'he' needs 2 segments"),
        ("SMS_TEMPLATE_EN", "Hi {first_name} {balance}", "SMS_TEMPLATE_EN: template 'en' uses"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL: choose DEBUG"),
        ("CORE_BANKING_URL", "core-banking:8080", "CORE_BANKING_URL: not an http(s) URL"),
        ("TWILIO_BASE_URL", "ftp://carrier", "TWILIO_BASE_URL: not an http(s) URL"),
        ("DATABASE_URL", f"mysql://u:{SECRET}@db/x", "DATABASE_URL: not a PostgreSQL URL"),
        ("REDIS_URL", f"http://u:{SECRET}@redis", "REDIS_URL: not a Redis URL"),
        ("BALANCE_SOURCE", "ftp://x", "BALANCE_SOURCE: expected 'http' or 'file:PATH'"),
        ("DATABASE_URL_FILE", "/no/such/secret", "DATABASE_URL_FILE: cannot read /no/such/secret"),
    ],
)
def test_a_bad_setting_is_named_with_what_is_wrong(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    if name == "DATABASE_URL_FILE":
        monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    line = describe_invalid(info.value)
    assert line.startswith("invalid setting ") and says in line
    assert "\n" not in line and SECRET not in line


def test_good_cron_specs_pass() -> None:
    for spec in ("*/3 * * * *", "30 6 1-3 * *", "0 9 * * 1-4,7", "15 5 * * sun-thu", "@daily"):
        assert check_cron(spec) == spec


def _start(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    executable = shutil.which(command)
    assert executable, f"{command} is not installed"
    return subprocess.run(
        [executable, "worker.tasks", *(["--processes", "1", "--threads", "1"]
                                       if command == "dramatiq" else [])],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("command", ["dramatiq", "periodiq"])
@pytest.mark.parametrize(
    ("name", "value"),
    [("SMS_SEND_WINDOW", "whenever"), ("DELIVERY_POLL_CRON", "*/3 * * *")],
)
def test_workers_and_scheduler_refuse_a_bad_setting_at_start(
    tmp_path: Path, command: str, name: str, value: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMETHEUS")}
    env.update({name: value, "DRAMATIQ_BROKER": "stub", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)})
    done = _start(command, env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and all(e.startswith(f"error: invalid setting {name}: ") for e in errors)


def test_help_and_version_work_whatever_the_settings_say() -> None:
    entry = shutil.which("premium-notify")
    assert entry
    env = {**os.environ, "BANK_TIMEZONE": "Mars/Base"}
    for argv in (["--version"], ["status", "--help"]):
        done = subprocess.run([entry, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    refused = subprocess.run([entry, "status"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert (
        refused.stderr.strip()
        == "error: invalid setting BANK_TIMEZONE: unknown time zone 'Mars/Base'"
    )
