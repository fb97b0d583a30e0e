"""SQL of the cold-storage export: archived rows of a window, counted and streamed as CSV.

On the caller's raw psycopg2 connection (one read-only transaction): COPY ... TO STDOUT
streams from the server into the caller's file with no rows held in memory. Table and
column names come from the archive models, never from input; the window's bounds are
bound parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


def _where(since: datetime | None) -> str:
    # The window is (since, until] of archived_at; no lower bound before the first export.
    return "archived_at <= %(until)s" + (" AND archived_at > %(since)s" if since else "")


def count_archived(raw: Any, table: str, since: datetime | None, until: datetime) -> int:
    """Rows of the archive table archived in the window."""
    with raw.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM {table} WHERE {_where(since)}",
            {"until": until, "since": since},
        )
        return int(cur.fetchone()[0])


def copy_archived_csv(
    raw: Any,
    table: str,
    columns: list[str],
    since: datetime | None,
    until: datetime,
    out: _Writable,
) -> None:
    """Write the window's rows (``columns``, oldest archived first) to ``out`` as CSV with
    a header line."""
    with raw.cursor() as cur:
        query = cur.mogrify(
            f"SELECT {', '.join(columns)} FROM {table} WHERE {_where(since)} "
            "ORDER BY archived_at, id",
            {"until": until, "since": since},
        ).decode()
        cur.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", out)
