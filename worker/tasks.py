"""The actor registry: ``dramatiq worker.tasks`` and ``periodiq worker.tasks`` load this.

Every actor module imports the broker front door (``worker.broker``) itself; this module
only makes sure all of them are registered in every worker and in the scheduler.
"""

from __future__ import annotations

from worker.actors import balances, delivery, maintenance, notifications, qualification
from worker.broker import broker

__all__ = ["balances", "broker", "delivery", "maintenance", "notifications", "qualification"]
