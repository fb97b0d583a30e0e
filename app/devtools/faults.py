"""Crash injection for the crash tests: SIGKILL a sending worker at a named step.

Tooling, never imported by production code. With ``PN_FAULT_POINT`` set to one of
``app.notifications.sending.CHECKPOINTS`` (``before_claim``, ``after_claim``,
``after_carrier_accept``, ``before_commit``), importing this module replaces the
sender's no-op checkpoint by one that kills the process with SIGKILL at that step, so a
worker can be started with it as an extra module::

    PN_FAULT_POINT=after_claim dramatiq worker.tasks app.devtools.faults

Without ``PN_FAULT_POINT`` importing it changes nothing.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from app.notifications import sending

ENV = "PN_FAULT_POINT"
FAULT_POINTS = sending.CHECKPOINTS


def killer(point: str) -> Callable[[str], None]:
    """A checkpoint that SIGKILLs this process when it reaches ``point``."""
    if point not in FAULT_POINTS:
        raise ValueError(f"{ENV}: unknown step {point!r} (known: {', '.join(FAULT_POINTS)})")

    def kill_at(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    return kill_at


def install(point: str | None = None) -> None:
    """Kill this process at ``point`` (default: ``$PN_FAULT_POINT``; unset: do nothing)."""
    point = point if point is not None else os.environ.get(ENV)
    if point:
        sending.checkpoint = killer(point)


install()
