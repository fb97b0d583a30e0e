"""What the backup service must do now, from the repository's own record.

The schedule is derived from what the repository holds, never from the service's
memory: after a restart, a crash or a missed night the next check takes what is
missing at once (the periodic kicks of the workers follow the same rule). A slot is the
most recent local ``BACKUP_TIME`` (bank time zone, 03:00 or later so every slot exists
exactly once a day).

* daily: no good backup in the daily repository since the last slot → one is due;
* weekly full: it is a full when no full finished since the last ``BACKUP_FULL_WEEKDAY``
  slot, else a differential;
* monthly: with ``BACKUP_MONTHLY_REPO``, a full there when none since the 1st's slot;
* export: the logical export when none since the last ``BACKUP_EXPORT_WEEKDAY`` slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from app.maintenance.pgbackrest import BackupInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAILY_REPO = 1


@dataclass(frozen=True)
class Rules:
    at: time
    tz: ZoneInfo
    full_weekday: str
    monthly_repo: int = 0
    export_weekday: str | None = None


@dataclass(frozen=True)
class Plan:
    slot: datetime  # the slot that made it due (aware, UTC)
    daily: str | None  # "full" or "diff"; None: the daily backup is done
    monthly: bool
    export: bool

    @property
    def anything(self) -> bool:
        return bool(self.daily or self.monthly or self.export)


def last_slot(now: datetime, rules: Rules) -> datetime:
    """The latest local ``rules.at`` at or before ``now`` (aware)."""
    local = now.astimezone(rules.tz)
    slot = datetime.combine(local.date(), rules.at, tzinfo=rules.tz)
    if slot > local:
        slot = datetime.combine(local.date() - timedelta(days=1), rules.at, tzinfo=rules.tz)
    return slot


def last_weekday_slot(now: datetime, rules: Rules, weekday: str) -> datetime:
    """The latest slot on ``weekday`` at or before ``now``."""
    slot = last_slot(now, rules)
    back = (slot.weekday() - WEEKDAYS.index(weekday)) % 7
    return datetime.combine(slot.date() - timedelta(days=back), rules.at, tzinfo=rules.tz)


def last_month_slot(now: datetime, rules: Rules) -> datetime:
    """The slot on the 1st of the month of the latest slot."""
    slot = last_slot(now, rules)
    return datetime.combine(slot.date().replace(day=1), rules.at, tzinfo=rules.tz)


def plan(
    now: datetime,
    backups: list[BackupInfo],
    rules: Rules,
    last_export: datetime | None = None,
) -> Plan:
    """What is due at ``now`` given the good backups (all repositories) and the last export."""
    slot = last_slot(now, rules)
    daily = [b for b in backups if b.repo == DAILY_REPO and not b.error]
    daily_kind: str | None = None
    if not any(b.stop >= slot for b in daily):
        weekly = last_weekday_slot(now, rules, rules.full_weekday)
        full_done = any(b.type == "full" and b.stop >= weekly for b in daily)
        daily_kind = "diff" if full_done else "full"
    monthly = False
    if rules.monthly_repo:
        month = last_month_slot(now, rules)
        kept = [b for b in backups if b.repo == rules.monthly_repo and not b.error]
        monthly = not any(b.type == "full" and b.stop >= month for b in kept)
    export = False
    if rules.export_weekday:
        weekly_export = last_weekday_slot(now, rules, rules.export_weekday)
        export = last_export is None or last_export < weekly_export
    return Plan(slot, daily_kind, monthly, export)


def next_slot(now: datetime, rules: Rules) -> datetime:
    """The next slot after ``now`` (the service sleeps until then, a minute at most)."""
    return last_slot(now, rules) + timedelta(days=1)
