"""SQL of the balance-check stage (the caller owns the transaction; nothing here commits).

Customers by shard range, the bulk write of checks (COPY), and the run bookkeeping
(``job_runs`` / ``job_shards``) of the daily runs and of gap repair.

Sharding: a customer's shard is a stable function of its id. Ids are random (v4 UUIDs
from ``gen_random_uuid()``), so the id's leading 32 bits already are a uniform hash;
shard k of n owns the id range [k * 2^32 / n, (k+1) * 2^32 / n) of those bits. A range
(rather than ``hash(id) % n``) lets each shard walk only its own slice of the primary
key index instead of every shard scanning every customer.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

import psycopg2.errors
import psycopg2.extensions
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.balances.checks import CheckRow
from app.models import JobRun, JobShard
from app.models.enums import RunStatus

_SPACE = 1 << 32


def shard_of(customer_id: uuid.UUID, shard_count: int) -> int:
    return (customer_id.int >> 96) * shard_count // _SPACE


@dataclass(frozen=True, slots=True)
class IdRange:
    low: uuid.UUID  # inclusive
    high: uuid.UUID | None  # exclusive; None = to the end


def shard_range(shard: int, shard_count: int) -> IdRange:
    if not 0 <= shard < shard_count:
        raise ValueError(f"shard {shard} is not in 0..{shard_count - 1}")

    def bound(k: int) -> int:
        return -(-k * _SPACE // shard_count)  # ceil: the first prefix of shard k

    low = uuid.UUID(int=bound(shard) << 96)
    high = None if shard == shard_count - 1 else uuid.UUID(int=bound(shard + 1) << 96)
    return IdRange(low, high)


FULL_RANGE = IdRange(uuid.UUID(int=0), None)

_RANGE_SQL = "c.id >= :low AND (CAST(:high AS uuid) IS NULL OR c.id < CAST(:high AS uuid))"


def _range_params(r: IdRange) -> dict[str, Any]:
    return {"low": r.low, "high": r.high}


def unchecked_customers(
    session: Session, day: date, id_range: IdRange, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, str]]:
    """The next ``limit`` active customers in the range with no check on ``day`` (by id)."""
    rows = session.execute(
        text(
            f"""
            SELECT c.id, c.account_number FROM customers c
            WHERE c.is_active AND {_RANGE_SQL}
              AND (CAST(:after AS uuid) IS NULL OR c.id > CAST(:after AS uuid))
              AND NOT EXISTS (SELECT 1 FROM daily_balance_checks d
                              WHERE d.customer_id = c.id AND d.check_date = :day)
            ORDER BY c.id LIMIT :limit
            """
        ),
        {**_range_params(id_range), "after": after, "day": day, "limit": limit},
    )
    return [(r[0], r[1]) for r in rows]


def has_gaps(session: Session, start: date, end: date) -> bool:
    """Whether some active customer has no check on some day of [start, end]."""
    found = session.execute(
        text(
            """
            SELECT EXISTS (
                SELECT 1 FROM generate_series(CAST(:start AS date), CAST(:end AS date),
                                              interval '1 day') AS g(day)
                CROSS JOIN customers c
                WHERE c.is_active AND NOT EXISTS (
                    SELECT 1 FROM daily_balance_checks d
                    WHERE d.customer_id = c.id AND d.check_date = CAST(g.day AS date)))
            """
        ),
        {"start": start, "end": end},
    ).scalar_one()
    return bool(found)


def count_active(session: Session, id_range: IdRange = FULL_RANGE) -> int:
    return int(
        session.execute(
            text(f"SELECT count(*) FROM customers c WHERE c.is_active AND {_RANGE_SQL}"),
            _range_params(id_range),
        ).scalar_one()
    )


def range_counts(session: Session, day: date, id_range: IdRange) -> dict[str, int]:
    """Exact counts of a shard's day, from the table (redeliveries cannot skew them)."""
    row = session.execute(
        text(
            f"""
            SELECT count(*) AS customers,
                   count(d.id) AS checked,
                   count(d.id) FILTER (WHERE d.passes_threshold) AS passed,
                   count(d.id) FILTER (WHERE d.data_quality_flag IS NOT NULL) AS flagged
            FROM customers c
            LEFT JOIN daily_balance_checks d ON d.customer_id = c.id AND d.check_date = :day
            WHERE c.is_active AND {_RANGE_SQL}
            """
        ),
        {**_range_params(id_range), "day": day},
    ).one()
    counts = {k: int(v) for k, v in row._mapping.items()}
    counts["missing"] = counts["customers"] - counts["checked"]
    return counts


def account_states(session: Session, accounts: list[str]) -> dict[str, bool]:
    """``is_active`` of each of ``accounts`` that a customer has (unknown ones absent),
    asked in chunks of 50,000."""
    states: dict[str, bool] = {}
    for i in range(0, len(accounts), 50_000):
        rows = session.execute(
            text(
                "SELECT account_number, is_active IS TRUE FROM customers "
                "WHERE account_number = ANY(:a)"
            ),
            {"a": accounts[i : i + 50_000]},
        )
        states.update((r[0], bool(r[1])) for r in rows)
    return states


# --- checks: one COPY (docs/design.md decision 6) --------------------------------------------
# Optimistically straight into ``daily_balance_checks`` (the common case: nobody wrote
# these days yet), and, when a concurrent or redelivered shard already wrote one of them
# (unique violation), again through a temp table with ``INSERT ... ON CONFLICT DO
# NOTHING``. Both paths fire the statement-level audit trigger once per statement, which
# writes one audit row per inserted check, carrying the row's correlation id.

COLUMNS = (
    "customer_id, check_date, balance, threshold, passes_threshold, "
    "check_timestamp, data_quality_flag, correlation_id"
)


def _copy_buffer(rows: Sequence[CheckRow], correlation_id: uuid.UUID, now: datetime) -> io.StringIO:
    stamp = now.isoformat(sep=" ")
    corr = str(correlation_id)
    lines = [
        f"{r.customer_id}\t{r.check_date.isoformat()}\t{r.balance}\t{r.threshold}\t"
        f"{'t' if r.passes else 'f'}\t{stamp}\t{r.flag or chr(92) + 'N'}\t{corr}\n"
        for r in rows
    ]
    return io.StringIO("".join(lines))


def write_checks(session: Session, rows: Sequence[CheckRow], correlation_id: uuid.UUID) -> int:
    """Insert ``rows`` (skipping days already checked); returns how many were inserted."""
    if not rows:
        return 0
    now = _utcnow()
    # COPY needs psycopg2's own cursor (copy_expert), on the session's connection.
    dbapi = cast(psycopg2.extensions.connection, session.connection().connection.dbapi_connection)
    with dbapi.cursor() as cur:
        cur.execute("SAVEPOINT balance_copy")
        try:
            cur.copy_expert(
                f"COPY daily_balance_checks ({COLUMNS}) FROM STDIN",
                _copy_buffer(rows, correlation_id, now),
            )
            cur.execute("RELEASE SAVEPOINT balance_copy")
            return len(rows)
        except psycopg2.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT balance_copy")
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS balance_check_stage "
            "(LIKE daily_balance_checks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute("TRUNCATE balance_check_stage")
        cur.copy_expert(
            f"COPY balance_check_stage ({COLUMNS}) FROM STDIN",
            _copy_buffer(rows, correlation_id, now),
        )
        cur.execute(
            f"INSERT INTO daily_balance_checks ({COLUMNS}) "
            f"SELECT {COLUMNS} FROM balance_check_stage "
            "ON CONFLICT (customer_id, check_date) DO NOTHING"
        )
        inserted = cur.rowcount
        cur.execute("TRUNCATE balance_check_stage")
        return int(inserted)


# --- runs: job_runs and job_shards --------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def insert_run(
    session: Session,
    *,
    job: str,
    run_key: str,
    triggered_by: str,
    stats: dict[str, Any],
    shard_count: int | None = None,
) -> JobRun:
    """A Running run (with ``shard_count`` Pending shards when given), server defaults loaded."""
    run = JobRun(job=job, run_key=run_key, triggered_by=triggered_by, stats=stats)
    if shard_count is not None:
        run.shard_count = shard_count
    session.add(run)
    session.flush()
    if shard_count is not None:
        session.add_all(JobShard(run_id=run.id, shard=k) for k in range(shard_count))
        session.flush()
    session.refresh(run)
    return run


def get_run(session: Session, run_id: uuid.UUID) -> JobRun | None:
    return session.get(JobRun, run_id)


def begin_shard(session: Session, run_id: uuid.UUID, shard: int) -> bool:
    """Mark the shard Running (one more attempt); False if it is already finished."""
    row = session.execute(
        text(
            "UPDATE job_shards SET status = 'Running', attempts = attempts + 1, "
            "started_at = COALESCE(started_at, CURRENT_TIMESTAMP) "
            "WHERE run_id = :run AND shard = :shard AND status <> 'Finished' RETURNING shard"
        ),
        {"run": run_id, "shard": shard},
    ).first()
    return row is not None


def mark_shard_finished(
    session: Session, run_id: uuid.UUID, shard: int, stats: dict[str, Any]
) -> bool:
    """Record a shard's counts, with its run row locked first (see ``close_run``).

    False if the shard had already finished (a redelivery).
    """
    session.execute(text("SELECT id FROM job_runs WHERE id = :run FOR UPDATE"), {"run": run_id})
    updated = session.execute(
        text(
            "UPDATE job_shards SET status = 'Finished', finished_at = CURRENT_TIMESTAMP, "
            "stats = CAST(:stats AS jsonb) "
            "WHERE run_id = :run AND shard = :shard AND status <> 'Finished' RETURNING shard"
        ),
        {"run": run_id, "shard": shard, "stats": json.dumps(stats, sort_keys=True)},
    ).first()
    return updated is not None


def close_run(session: Session, run_id: uuid.UUID) -> tuple[datetime, datetime] | None:
    """Finish the run if no shard is unfinished: (started_at, finished_at), or None.

    Exactly once: the caller holds the run row's lock (``mark_shard_finished``), so two shards
    finishing at the same moment are serialised and the second sees the first's commit.
    """
    closed = session.execute(
        text(
            "UPDATE job_runs SET status = 'Finished', finished_at = CURRENT_TIMESTAMP "
            "WHERE id = :run AND finished_at IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM job_shards WHERE run_id = :run AND status <> 'Finished') "
            "RETURNING started_at, finished_at"
        ),
        {"run": run_id},
    ).first()
    return None if closed is None else (closed.started_at, closed.finished_at)


def merge_run_stats(session: Session, run_id: uuid.UUID, stats: dict[str, Any]) -> JobRun:
    """Add ``stats`` to the run's own (re-read first: a statement may have changed it)."""
    run = session.get(JobRun, run_id)
    assert run is not None
    session.refresh(run)
    run.stats = {**run.stats, **stats}
    return run


def shard_stats(session: Session, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every shard's recorded counts."""
    return [
        stats
        for (stats,) in session.execute(
            text("SELECT stats FROM job_shards WHERE run_id = :run"), {"run": run_id}
        )
    ]


def mark_run_failed(session: Session, run_id: uuid.UUID, error: str) -> None:
    """Mark an unfinished run Failed with ``error`` (cut to 2,000 characters)."""
    session.execute(
        text(
            "UPDATE job_runs SET status = :failed, error = :error "
            "WHERE id = :run AND finished_at IS NULL"
        ),
        {"run": run_id, "error": error[:2000], "failed": str(RunStatus.FAILED)},
    )


def mark_run_finished(session: Session, run_id: uuid.UUID, stats: dict[str, Any]) -> JobRun:
    """Mark an unsharded run (gap repair) Finished now, adding ``stats`` to its own."""
    run = session.get(JobRun, run_id)
    assert run is not None
    run.status = str(RunStatus.FINISHED)
    run.finished_at = _utcnow()
    run.stats = {**run.stats, **stats}
    return run


def unfinished_shards(session: Session, run_id: uuid.UUID) -> list[int]:
    rows = session.execute(
        text(
            "SELECT shard FROM job_shards WHERE run_id = :run AND status <> 'Finished' "
            "ORDER BY shard"
        ),
        {"run": run_id},
    )
    return [r[0] for r in rows]


@dataclass(frozen=True, slots=True)
class LatestRun:
    run_id: uuid.UUID
    finished_at: datetime | None
    status: str


def latest_runs(session: Session, job: str, keys: list[str]) -> dict[str, LatestRun]:
    """Per run key: its finished run if any, else its latest one (keys without a run absent)."""
    rows = session.execute(
        text(
            "SELECT DISTINCT ON (run_key) run_key, id, finished_at, status FROM job_runs "
            "WHERE job = :job AND run_key = ANY(:keys) "
            "ORDER BY run_key, (finished_at IS NOT NULL) DESC, started_at DESC"
        ),
        {"job": job, "keys": keys},
    ).all()
    return {r.run_key: LatestRun(r.id, r.finished_at, r.status) for r in rows}
