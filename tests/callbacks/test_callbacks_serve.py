"""``premium-notify serve callbacks`` run exactly as docker/compose.yaml runs it (ports
swapped for free ones), probed on its healthcheck path, fed one signed callback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.models import CallbackReceipt
from tests.support.callbacks import post_signed, status_params
from tests.support.carrier import TOKEN

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _compose_service() -> dict[str, object]:
    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    return dict(compose["services"]["callbacks"])


def test_compose_command_serves_health_and_callbacks(database_url: str, db: Engine) -> None:
    service = _compose_service()
    command = [str(x) for x in service["command"]]  # type: ignore[union-attr]
    health = " ".join(str(x) for x in service["healthcheck"]["test"])  # type: ignore[index]
    assert command[:3] == ["premium-notify", "serve", "callbacks"] and "/healthz" in health
    port, metrics = _free_port(), _free_port()
    for option, value in (("--port", port), ("--metrics-port", metrics), ("--host", "127.0.0.1")):
        command[command.index(option) + 1] = str(value)
    command[0] = str(Path(sys.executable).parent / "premium-notify")
    public = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": database_url, "TWILIO_AUTH_TOKEN": TOKEN,
           "CALLBACK_PUBLIC_URL": public}  # fmt: skip
    # The image sets PROMETHEUS_MULTIPROC_DIR (values in files there); here: in memory.
    # (Set even to "", prometheus_client would write its files into the working folder.)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{public}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
            assert time.monotonic() < end, "serve callbacks did not come up"
            time.sleep(0.1)
        assert requests.get(f"{public}/readyz", timeout=5).status_code == 200
        sid = "SM" + "d" * 32
        r = post_signed(public, "/v1/callbacks/status", status_params(sid, "sent"), public=public)
        assert r.status_code == 204
        scraped = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=5).text
        assert 'pn_callback_requests_total{answer="accepted",endpoint="status"} 1.0' in scraped
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    with Session(db) as session:
        outcomes = list(session.scalars(select(CallbackReceipt.outcome)))
    assert outcomes == ["unknown_notification"]


def test_without_public_url_it_refuses_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.cli.main import cli
    from app.config import get_settings

    for bad in ("", "notify.bank.example"):
        monkeypatch.setenv("CALLBACK_PUBLIC_URL", bad)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
        get_settings.cache_clear()
        result = CliRunner().invoke(cli, ["serve", "callbacks", "--port", str(_free_port())])
        assert result.exit_code == 2, result.output
        assert "CALLBACK_PUBLIC_URL must be" in result.output
        assert "Traceback" not in result.output
    get_settings.cache_clear()
