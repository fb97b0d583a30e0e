"""The backup service's Prometheus textfile (node_exporter's textfile collector).

Rewritten after every backup and every minute between them, from the repository's own
record (``pgbackrest info``), so it tells the truth even after a restart. The alert
``BackupMissing`` (docker/prometheus/rules/database.yml) reads
``pn_backup_last_success_timestamp_seconds``: the newest good backup of the daily
repository (a monthly or a logical export never stands in for it). Age is published too
for dashboards; alerts use ``time() - timestamp``, which stays right when this file is
no longer refreshed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from app.maintenance.backup_rotation import write_atomic
from app.maintenance.pgbackrest import StanzaInfo

FAILURE_RE = re.compile(
    r"^pn_backup_last_failure_timestamp_seconds\{[^}]*\} (\d+(?:\.\d+)?)$", re.M
)


@dataclass(frozen=True)
class Archiver:
    """``pg_stat_archiver`` of the database server (WAL archiving into the repository)."""

    archived_count: int
    last_archived: datetime | None
    failed_count: int
    last_failed: datetime | None


def previous_failure(path: Path) -> float | None:
    """The failure time a previous run of the service published (it survives restarts)."""
    try:
        match = FAILURE_RE.search(path.read_text())
    except OSError:
        return None
    return float(match.group(1)) if match else None


def render(
    stanza: str,
    info: StanzaInfo,
    now: datetime,
    *,
    monthly_repo: int = 0,
    archiver: Archiver | None = None,
    last_failure: float | None = None,
) -> str:
    """The textfile: one gauge per line group, labelled with the stanza."""
    label = f'stanza="{stanza}"'
    values: list[tuple[str, str, float, str]] = []  # name, help, value, labels

    def gauge(name: str, help_text: str, value: float, labels: str = label) -> None:
        values.append((name, help_text, value, labels))

    daily = info.good(1)
    if daily:
        last = daily[-1]
        gauge(
            "pn_backup_last_success_timestamp_seconds",
            "Unix time the newest good backup of the daily repository finished.",
            last.stop.timestamp(),
        )
        gauge("pn_backup_age_seconds", "Seconds since then.", (now - last.stop).total_seconds())
        gauge("pn_backup_size_bytes", "Database size in the newest backup.", last.size)
        gauge(
            "pn_backup_duration_seconds",
            "Duration of the newest backup.",
            (last.stop - last.start).total_seconds(),
        )
        fulls = [b for b in daily if b.type == "full"]
        if fulls:
            gauge(
                "pn_backup_last_full_timestamp_seconds",
                "Unix time the newest full backup finished.",
                fulls[-1].stop.timestamp(),
            )
        gauge("pn_backup_sets", "Good backups in the daily repository.", len(daily))
    gauge(
        "pn_backup_repository_backup_bytes",
        "Bytes the backups take in the repositories (compressed, encrypted).",
        sum(b.repo_size for b in info.backups),
    )
    monthly = info.good(monthly_repo) if monthly_repo else []
    if monthly:
        gauge(
            "pn_backup_monthly_last_success_timestamp_seconds",
            "Unix time the newest good backup of the monthly repository finished.",
            monthly[-1].stop.timestamp(),
            f'{label},repo="{monthly_repo}"',
        )
    stanza_ok = 1 if info.status_code == 0 else 0
    gauge("pn_backup_stanza_ok", "1 when pgbackrest info says the stanza is ok.", stanza_ok)
    if archiver is not None:
        if archiver.last_archived:
            gauge(
                "pn_backup_wal_last_archived_timestamp_seconds",
                "Unix time the server last archived a WAL segment (pg_stat_archiver).",
                archiver.last_archived.timestamp(),
            )
        gauge(
            "pn_backup_wal_archive_failures",
            "Failed WAL archive attempts (pg_stat_archiver.failed_count, since its reset).",
            archiver.failed_count,
        )
        if archiver.last_failed:
            gauge(
                "pn_backup_wal_last_failed_timestamp_seconds",
                "Unix time of the last failed WAL archive attempt.",
                archiver.last_failed.timestamp(),
            )
    if last_failure is not None:
        gauge(
            "pn_backup_last_failure_timestamp_seconds",
            "Unix time the backup service last failed.",
            last_failure,
        )
    lines = []
    for name, help_text, value, labels in values:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        lines.append(f"{name}{{{labels}}} {value:.0f}")
    return "\n".join(lines) + "\n"


def write(path: Path, body: str) -> None:
    """Replace the textfile atomically (the collector never reads half of it)."""
    write_atomic(path, body)
