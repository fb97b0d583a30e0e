"""The chaos run's scheduler: ``periodiq worker.tasks chaos_scheduler`` (scripts/ on its path).

The real periodiq process with the real registry, minus the kicks tied to the calendar:
the daily balance and gap-repair kicks, the monthly qualification kick and the retention
kick would work on *today's* dates (a run for an older month would check, qualify or
archive the wrong days beside it). The chaos driver plays those, pinned to the month
under test; this scheduler keeps the kicks that look at the whole database whatever the
date (the outbox reconciler, delivery polling) on their real crons.
"""

from __future__ import annotations

import dramatiq

CALENDAR_KICKS = (
    "balances.daily_kick",
    "balances.gap_repair_kick",
    "qualification.monthly_kick",
    "maintenance.retention_kick",
)

for _name in CALENDAR_KICKS:
    dramatiq.get_broker().get_actor(_name).options.pop("periodic")
