"""Guard tests (as GOV.UK Notify's test_all_queues_used): the deploy files and the code agree."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _commands() -> dict[str, list[str]]:
    services = _compose()["services"]
    return {name: [str(x) for x in svc.get("command") or []] for name, svc in services.items()}


# premium-notify-worker is dramatiq with JSON logs (worker/main.py): same arguments.
WORKER_PROGRAMS = (["dramatiq"], ["premium-notify-worker"])


def _consumed_queues() -> set[str]:
    queues: set[str] = set()
    for command in _commands().values():
        if command[:1] in WORKER_PROGRAMS and "--queues" in command:
            start = command.index("--queues") + 1
            for token in command[start:]:
                if token.startswith("-"):
                    break
                queues.add(token)
        elif command[:1] in WORKER_PROGRAMS:
            queues.add("*")  # a worker without --queues consumes every queue
    return queues


def test_every_actor_queue_is_consumed_by_a_worker_in_compose() -> None:
    import worker.tasks

    broker = worker.tasks.broker
    used = {broker.get_actor(name).queue_name for name in broker.get_declared_actors()}
    consumed = _consumed_queues()
    if "*" not in consumed:
        assert used <= consumed, f"queues with no worker in compose: {sorted(used - consumed)}"
    declared = set(broker.get_declared_queues())
    assert used <= declared


def test_exactly_one_scheduler() -> None:
    schedulers = [n for n, c in _commands().items() if c[:1] == ["periodiq"]]
    assert schedulers == ["scheduler"]
    assert _compose()["services"]["scheduler"].get("deploy", {}).get("replicas") == 1


def _started_modules() -> set[str]:
    """Python modules that compose or the README starts (dramatiq/periodiq/python -m)."""
    modules: set[str] = set()
    for command in _commands().values():
        if command[:1] in (*WORKER_PROGRAMS, ["periodiq"]) and len(command) > 1:
            modules.add(command[1])
    readme = (ROOT / "README.md").read_text()
    pattern = r"^\s*(?:[A-Z_]+=\S+\s+)*(?:dramatiq|periodiq)\s+([A-Za-z_][\w.]*)"
    modules.update(re.findall(pattern, readme, flags=re.M))
    for module in re.findall(r"python -m ([\w.]+)", readme):
        modules.add(module)
    return modules


def test_every_started_module_exists_and_imports() -> None:
    modules = _started_modules()
    assert "worker.tasks" in modules
    for module in modules:
        importlib.import_module(module)


def test_every_cli_command_in_compose_exists() -> None:
    from typer.testing import CliRunner

    from app.cli.main import cli

    runner = CliRunner()
    for name, command in _commands().items():
        if command[:1] == ["premium-notify"]:
            words = [w for w in command[1:] if not w.startswith("-")][:2]
            result = runner.invoke(cli, [*words, "--help"])
            assert result.exit_code == 0, (
                f"{name}: premium-notify {' '.join(words)}: {result.output}"
            )


def test_compose_file_validates() -> None:
    import shutil
    import subprocess

    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: ./scripts/test installs it (Debian package)"
    result = subprocess.run(
        [binary, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_readme_documents_every_setting() -> None:
    from app.config import Settings

    readme = (ROOT / "README.md").read_text()
    missing = [n.upper() for n in Settings.model_fields if f"`{n.upper()}`" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_retention_writes_cold_storage_to_a_volume_never_the_container() -> None:
    """Retention drops a month once its cold set is written: in compose that set must land
    on a named volume (or the object store COLD_STORAGE_URL names), and the empty URL that
    compose passes when none is configured means "the folder"."""
    from app.config import Settings

    compose = _compose()
    service = compose["services"]["worker-maintenance"]
    folder = service["environment"]["COLD_STORAGE_DIR"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
    assert mounts.get(folder) in compose["volumes"], (folder, mounts)
    assert service["environment"]["COLD_STORAGE_URL"] == "${COLD_STORAGE_URL:-}"
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert folder in dockerfile.split("chmod 0700", 1)[1].split("USER", 1)[0]  # private
    assert not Settings(cold_storage_url="").cold_storage_url  # empty: COLD_STORAGE_DIR
    # It reads back the encrypted sets it writes (verification, expiry): the identity.
    identity = service["environment"]["BACKUP_AGE_IDENTITY_FILE"]
    assert identity == "/run/secrets/backup_age_identity"
    assert "backup_age_identity" in service["secrets"]
