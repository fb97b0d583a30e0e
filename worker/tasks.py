"""The actor registry: ``dramatiq worker.tasks`` and ``periodiq worker.tasks`` load this.

It imports the broker first, then every actor module.
"""

from __future__ import annotations

from worker import broker as _broker  # noqa: F401  (sets the global broker first)

broker = _broker.broker

# Actor modules (each registers its actors on the broker when imported).
from worker.actors import balances as _balances  # noqa: E402,F401
from worker.actors import delivery as _delivery  # noqa: E402,F401
from worker.actors import maintenance as _maintenance  # noqa: E402,F401
from worker.actors import notifications as _notifications  # noqa: E402,F401
from worker.actors import qualification as _qualification  # noqa: E402,F401
