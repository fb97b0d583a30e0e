"""Grandfather-father-son rotation of the logical exports, and their textfile metrics.

Every export of the last 30 days; the first of each ISO week for 90 days; the first of
each month for 365 days (the seed's "30 days daily, 90 days weekly, 1 year monthly");
everything else is deleted. The physical backups' retention is pgBackRest's own
(``app/maintenance/pgbackrest.py``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

NAME_RE = re.compile(r"^(?P<db>.+)_(?P<ts>\d{8}T\d{6}Z)\.dump(?:\.age)?$")
DAILY_DAYS, WEEKLY_DAYS, MONTHLY_DAYS = 30, 90, 365


def backup_time(path: Path) -> datetime | None:
    """The UTC time in an export's file name (None: not an export's name)."""
    match = NAME_RE.match(path.name)
    if not match:
        return None
    return datetime.strptime(match.group("ts"), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def to_keep(stamps: Iterable[datetime], now: datetime) -> set[datetime]:
    """Grandfather-father-son: which backup times survive rotation."""
    ordered = sorted(stamps)
    keep = {s for s in ordered if now - s <= timedelta(days=DAILY_DAYS)}
    weeks: dict[tuple[int, int], datetime] = {}
    months: dict[tuple[int, int], datetime] = {}
    for s in ordered:  # oldest first: the first of each week/month wins
        weeks.setdefault(s.isocalendar()[:2], s)
        months.setdefault((s.year, s.month), s)
    keep |= {s for s in weeks.values() if now - s <= timedelta(days=WEEKLY_DAYS)}
    keep |= {s for s in months.values() if now - s <= timedelta(days=MONTHLY_DAYS)}
    return keep


def rotate(folder: Path, database: str, now: datetime | None = None) -> list[Path]:
    """Delete the exports of ``database`` rotation does not keep; returns the deleted."""
    now = now or datetime.now(UTC)
    dumps: dict[datetime, Path] = {}
    for p in folder.glob(f"{database}_*.dump*"):
        match = NAME_RE.match(p.name)
        stamp = backup_time(p)
        if match and stamp is not None and match.group("db") == database:
            dumps[stamp] = p
    keep = to_keep(dumps, now)
    deleted = []
    for stamp, path in sorted(dumps.items()):
        if stamp not in keep:
            path.unlink()
            Path(str(path) + ".json").unlink(missing_ok=True)
            deleted.append(path)
    return deleted


def write_textfile(path: Path, database: str, dump: Path, seconds: float) -> None:
    """Prometheus textfile-collector metrics of the last good logical export (atomic).

    Named apart from the physical backups' ``pn_backup_*``: the backup alert must not be
    silenced by a fresh export while the physical backups fail.
    """
    label = f'database="{database}"'
    body = (
        "# HELP pn_backup_export_last_success_timestamp_seconds Unix time of the last good "
        "logical export.\n"
        "# TYPE pn_backup_export_last_success_timestamp_seconds gauge\n"
        f"pn_backup_export_last_success_timestamp_seconds{{{label}}} {time.time():.0f}\n"
        "# HELP pn_backup_export_size_bytes Size of the last good logical export (encrypted).\n"
        "# TYPE pn_backup_export_size_bytes gauge\n"
        f"pn_backup_export_size_bytes{{{label}}} {dump.stat().st_size}\n"
        "# HELP pn_backup_export_duration_seconds Duration of the last good logical export.\n"
        "# TYPE pn_backup_export_duration_seconds gauge\n"
        f"pn_backup_export_duration_seconds{{{label}}} {seconds:.2f}\n"
    )
    write_atomic(path, body)


def write_atomic(path: Path, body: str) -> None:
    """Write a textfile-collector file so the collector never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(body)
    os.replace(tmp, path)
