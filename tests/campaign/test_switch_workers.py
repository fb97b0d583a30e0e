"""``sms pause`` with real ``dramatiq`` worker processes on Redis: every sender stops
within seconds, nothing is lost (the rest stays Queued); ``sms resume`` finishes the wave
and every customer gets exactly one message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.cli.main import cli
from app.config import PROJECT_ROOT, get_settings
from app.devtools.simulators.carrier import SimulatorThread
from tests.campaign.conftest import OCT, customers, outbox_of, prepare
from tests.support.carrier import ACCOUNT, ALWAYS_OPEN, SENDER, TOKEN

CUSTOMERS = 36
MPS = 6  # segments per second across both workers: the wave takes about 6 s unpaused
PAUSE_CHECK = 0.5  # SMS_PAUSE_CHECK_SECONDS of the workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepted(sim: SimulatorThread) -> list[float]:
    return sorted(t for t, _ in sim.state.accept_times())


def _wait_for(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a real Redis (REDIS_URL)")
def test_pause_stops_every_worker_and_resume_finishes_the_wave_once(
    session: Session, carrier_sim: SimulatorThread, redis_client: object, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import redis
    from dramatiq import Message
    from dramatiq.brokers.redis import RedisBroker

    from worker.signing import sign  # the workers refuse unsigned messages

    phones = [f"+97250777{i:04d}" for i in range(CUSTOMERS)]
    customers(session, *phones)
    env = {
        **os.environ, "DRAMATIQ_BROKER": "redis", "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": SENDER, "TWILIO_BASE_URL":
        carrier_sim.base_url, "SMS_SEND_WINDOW": ALWAYS_OPEN, "SMS_MPS": str(MPS),
        "SMS_TEMPLATE_LANGUAGE": "en", "SMS_BATCH_SIZE": "6", "SMS_CLAIM_CHUNK": "3",
        "SMS_PAUSE_CHECK_SECONDS": str(PAUSE_CHECK), "SMS_PAUSED_RECHECK_SECONDS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }  # fmt: skip
    for key in ("SMS_TEMPLATE_LANGUAGE", "SMS_BATCH_SIZE"):
        monkeypatch.setenv(key, env[key])
    get_settings.cache_clear()
    batches = prepare(OCT).batches
    assert len(batches) == CUSTOMERS // 6
    dramatiq_bin = str(Path(sys.executable).with_name("dramatiq"))
    workers = [
        subprocess.Popen(
            [dramatiq_bin, "worker.tasks", "--processes", "1", "--threads", "2", "--queues", "sms"],
            cwd=PROJECT_ROOT,
            env={**env, "METRICS_PORT": str(_free_port())},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(2)
    ]
    runner = CliRunner()
    try:
        broker = RedisBroker(client=redis.Redis.from_url(os.environ["REDIS_URL"]))
        for batch in batches:
            broker.enqueue(sign(Message(queue_name="sms", actor_name="notifications.send_batch",
                                        args=(str(batch),), kwargs={}, options={})))  # fmt: skip
        _wait_for(lambda: len(_accepted(carrier_sim)) >= 8, 60)

        paused_at = time.time()
        result = runner.invoke(cli, ["sms", "pause", "--reason", "complaint"])
        assert result.exit_code == 0, result.output
        time.sleep(PAUSE_CHECK + 3)
        sent_while_paused = len(_accepted(carrier_sim))
        time.sleep(3)
        # Nothing more reached the carrier, and the last create started within the
        # switch's re-read interval plus one rate-limited call after the pause.
        assert len(_accepted(carrier_sim)) == sent_while_paused < CUSTOMERS
        assert _accepted(carrier_sim)[-1] <= paused_at + PAUSE_CHECK + 2.5
        october = outbox_of(session, OCT).values()
        states = sorted(n.submission_status or "" for n in october)
        assert (
            states
            == ["Queued"] * (CUSTOMERS - sent_while_paused) + ["Submitted"] * sent_while_paused
        )  # nothing lost, nothing in flight

        result = runner.invoke(cli, ["sms", "resume"])
        assert result.exit_code == 0, result.output
        _wait_for(
            lambda: (
                {n.submission_status for n in outbox_of(session, OCT).values()} == {"Submitted"}
            ),
            60,
        )
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        get_settings.cache_clear()
    assert carrier_sim.state.per_recipient() == {p: 1 for p in phones}
    assert len(_accepted(carrier_sim)) == CUSTOMERS
