"""prometheus-client multiprocess mode: which directory, and set up before the import.

The trap (docs/design.md): prometheus_client chooses between in-memory and mmap'ed-file
values *when it is imported*. A Dramatiq worker runs several processes and a separate
exporter process, so every value must live in files under ``PROMETHEUS_MULTIPROC_DIR``
and the variable must be set before anything imports prometheus_client; otherwise
``/metrics`` is silently empty. ``configure_process()`` is called from
``worker/__init__.py`` (the first module of every worker, fork and scheduler process)
and raises if prometheus_client was imported too early, so the mistake is loud.

Directories:

* workers: ``$PROMETHEUS_MULTIPROC_DIR`` if set (containers: one worker group each);
  else ``<tmp>/premium-notify-metrics/worker-<dramatiq main pid>``, shared by the worker
  processes and the exporter fork of one ``dramatiq`` command and by nothing else.
* scheduler: ``$PROMETHEUS_MULTIPROC_DIR/scheduler`` (or ``…/scheduler-<pid>``), wiped
  at start: it is the only process writing there.

Other processes (CLI, tests) keep the default in-process registry.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from enum import StrEnum
from pathlib import Path

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
ENV_ROLE = "PN_PROCESS_ROLE"
BASE_DIR = Path(tempfile.gettempdir()) / "premium-notify-metrics"


class Role(StrEnum):
    WORKER = "worker"  # dramatiq worker processes and their forks (the exporter)
    SCHEDULER = "scheduler"  # periodiq
    OTHER = "other"  # CLI, tests, scripts: single process, default registry


_configured: tuple[Role, Path | None] | None = None


def detect_role(argv: list[str] | None = None) -> Role:
    """The process role: ``PN_PROCESS_ROLE`` or the program that started the process."""
    explicit = os.environ.get(ENV_ROLE)
    if explicit:
        return Role(explicit)
    argv = sys.argv if argv is None else argv
    path = Path(argv[0]) if argv and argv[0] else Path()
    # "python -m dramatiq" shows up as .../dramatiq/__main__.py
    program = path.parent.name if path.name == "__main__.py" else path.name
    if program in ("dramatiq", "dramatiq-gevent"):
        return Role.WORKER
    if program == "periodiq":
        return Role.SCHEDULER
    return Role.OTHER


def multiproc_dir(role: Role) -> Path | None:
    base = os.environ.get(ENV_DIR)
    if role is Role.WORKER:
        # Worker processes and exporter forks are children of one dramatiq main process.
        return Path(base) if base else BASE_DIR / f"worker-{os.getppid()}"
    if role is Role.SCHEDULER:
        return Path(base) / "scheduler" if base else BASE_DIR / f"scheduler-{os.getpid()}"
    return Path(base) if base else None


def configure_process(role: Role | None = None) -> tuple[Role, Path | None]:
    """Point prometheus_client at this process's multiprocess directory (idempotent)."""
    global _configured
    if _configured is not None:
        return _configured
    role = role or detect_role()
    directory = multiproc_dir(role)
    if role is Role.OTHER:
        _configured = (role, directory)
        return _configured
    assert directory is not None
    if role is Role.SCHEDULER:
        # The scheduler owns its directory: values of an earlier run must not linger.
        shutil.rmtree(directory, ignore_errors=True)
        _remove_dead_default_dirs()
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(directory)
    os.environ["prometheus_multiproc_dir"] = str(directory)
    # dramatiq's Prometheus middleware reads this one when it is first imported.
    os.environ["dramatiq_prom_db"] = str(directory)
    _check_not_imported_too_early()
    _configured = (role, directory)
    return _configured


def reset() -> None:
    """Forget the role chosen at import (worker/main.py, before dramatiq starts children)."""
    global _configured
    _configured = None


def current() -> tuple[Role, Path | None]:
    return _configured if _configured is not None else configure_process()


def _check_not_imported_too_early() -> None:
    values = sys.modules.get("prometheus_client.values")
    if values is not None and getattr(values, "ValueClass", None) is not None:
        if "Mmaped" not in values.ValueClass.__name__:
            raise RuntimeError(
                "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set: "
                "this process's metrics would be silently missing from /metrics"
            )


def _remove_dead_default_dirs() -> None:
    """Default-location directories of processes that are gone (they are never reused)."""
    if not BASE_DIR.is_dir():
        return
    for entry in BASE_DIR.iterdir():
        _, _, pid = entry.name.rpartition("-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_processes(directory: Path) -> int:
    """Drop live-gauge files of processes that died without cleaning up (crash, kill -9).

    Counters and histograms of dead processes stay: removing them would make the
    summed counter go down (Prometheus would read it as a reset).
    """
    from prometheus_client import multiprocess

    dead = 0
    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), str(directory))  # type: ignore[no-untyped-call]
            dead += 1
    return dead
