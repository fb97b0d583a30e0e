"""A second real client: Twilio's official Node SDK (pinned in node_sdk/package.json)
creates, fetches, pages and iterates (``each``) against the simulator.

Runs when ``node`` and ``npm`` are on the PATH; the SDK is installed once into
``.data/node-sdk/<hash of package.json>`` (git-ignored) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from app.devtools.simulators.carrier import SimulatorThread
from tests.support.carrier import ACCOUNT, SENDER, TOKEN

HERE = Path(__file__).resolve().parent / "node_sdk"
ROOT = Path(__file__).resolve().parents[2]
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None,
    reason="node and npm are not installed: the Node SDK contract test needs them",
)


def _installed() -> Path:
    """A folder with the pinned SDK installed and the contract script beside it."""
    manifest = (HERE / "package.json").read_bytes() + (HERE / "package-lock.json").read_bytes()
    folder = ROOT / ".data" / "node-sdk" / hashlib.sha256(manifest).hexdigest()[:16]
    if not (folder / "node_modules" / "twilio" / "package.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(HERE / name, folder / name)
        assert NPM is not None
        result = subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, f"npm ci failed: {result.stderr[-2000:]}"
    shutil.copy(HERE / "contract.js", folder / "contract.js")
    return folder


def test_official_node_sdk_against_the_simulator(carrier_sim: SimulatorThread) -> None:
    folder = _installed()
    assert NODE is not None
    env = {
        **os.environ,
        "SIM_URL": carrier_sim.base_url,
        "ACCOUNT_SID": ACCOUNT,
        "AUTH_TOKEN": TOKEN,
        "SENDER": SENDER,
    }
    result = subprocess.run(
        [NODE, "contract.js"], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "created": 6, "fetchedStatus": "delivered", "pages": 3, "each": 6, "filtered": 6,
        "errorCode": 21603,
    }  # fmt: skip
    assert carrier_sim.state.per_recipient() == {"+972501230000": 6}
