"""SQL of the backup service and of point-in-time recovery, on raw DB-API connections.

Server-level views only (``pg_stat_archiver``, the recovery functions): the backup
service reads them beside pgBackRest, and a restored cluster is watched through them
while it replays WAL on a private socket, before any Session could be opened on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def archiver(pg: Any) -> tuple[int, datetime | None, int, datetime | None]:
    """``pg_stat_archiver``: archived count, last archived, failed count, last failed."""
    with pg.cursor() as cur:
        cur.execute(
            "SELECT archived_count, last_archived_time, failed_count, last_failed_time "
            "FROM pg_stat_archiver"
        )
        archived, last_archived, failed, last_failed = cur.fetchone()
    return int(archived), last_archived, int(failed), last_failed


def recovery_state(pg: Any) -> tuple[bool, datetime | None]:
    """Whether the server still replays WAL, and the commit time of the last replayed
    transaction (kept after promotion: the point the restored data stands at)."""
    with pg.cursor() as cur:
        cur.execute("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()")
        in_recovery, replayed = cur.fetchone()
    return bool(in_recovery), replayed
