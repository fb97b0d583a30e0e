"""Run and shard bookkeeping of the daily balance checks, and the fan-in.

A day's run is one ``job_runs`` row (job ``balance_checks``, run_key the date) with one
``job_shards`` row per shard. Shards record exact counts when they finish; the last one
to finish marks the run finished exactly once: it locks the run row first, so two
shards finishing at the same moment are serialised and the second one sees the first
one's commit (without the lock, each could see the other still unfinished and neither
would close the run). The SQL is in ``app.balances.repository``; the caller owns the
transaction.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.balances import repository
from app.db import leases
from app.models.enums import RunStatus, Severity
from app.observability.events import record_event
from app.observability.metrics import JOB_DURATION_SECONDS, JOB_RUNS

JOB = "balance_checks"
SUM_KEYS = ("customers", "checked", "inserted", "passed", "flagged", "missing", "rejected")


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: uuid.UUID
    day: date
    shard_count: int
    correlation_id: uuid.UUID
    threshold: Decimal
    source: str | None


def start_run(
    session: Session,
    day: date,
    *,
    shard_count: int,
    threshold: Decimal,
    source: str | None,
    triggered_by: str,
) -> RunInfo:
    """Create the run and its Pending shards; the caller enqueues them after commit."""
    run = repository.insert_run(
        session,
        job=JOB,
        run_key=day.isoformat(),
        shard_count=shard_count,
        triggered_by=triggered_by,
        # The threshold is fixed per run: every shard writes the same one.
        stats={"threshold": str(threshold), "source": source},
    )
    # A run of the day whose process died (lease expired) is taken over by this one: it
    # checks exactly the customers the dead one left unchecked.
    leases.take_over_stale(session, JOB, run.id, run_key=day.isoformat())
    record_event(
        session,
        "balance_checks.started",
        f"balance checks for {day.isoformat()} started with {shard_count} shards",
        data={"run_id": str(run.id), "date": day.isoformat(), "shards": shard_count},
        correlation_id=run.correlation_id,
    )
    return load_run(session, run.id)


def load_run(session: Session, run_id: uuid.UUID) -> RunInfo:
    run = repository.get_run(session, run_id)
    if run is None or run.job != JOB:
        raise LookupError(f"no balance-check run {run_id}")
    return RunInfo(
        run.id,
        date.fromisoformat(run.run_key),
        run.shard_count,
        run.correlation_id,
        Decimal(str(run.stats.get("threshold", "15000.00"))),
        run.stats.get("source"),
    )


def finish_shard(session: Session, run_id: uuid.UUID, shard: int, stats: dict[str, Any]) -> bool:
    """Record the shard's counts; returns True if this call finished the whole run."""
    if not repository.mark_shard_finished(session, run_id, shard, stats):
        return False
    return _finalize(session, run_id)


def _finalize(session: Session, run_id: uuid.UUID) -> bool:
    closed = repository.close_run(session, run_id)
    if closed is None:
        return False
    started_at, finished_at = closed
    totals = aggregate(session, run_id)
    run = repository.merge_run_stats(session, run_id, totals)
    duration = (finished_at - started_at).total_seconds()
    JOB_DURATION_SECONDS.labels(JOB).observe(duration)
    JOB_RUNS.labels(JOB, "finished").inc()
    record_event(
        session,
        "balance_checks.finished",
        f"balance checks for {run.run_key} finished: {totals['checked']} checked, "
        f"{totals['missing']} missing",
        severity=Severity.WARNING if totals["missing"] else Severity.INFO,
        data={"run_id": str(run_id), "date": run.run_key, **totals},
        correlation_id=run.correlation_id,
    )
    return True


def aggregate(session: Session, run_id: uuid.UUID) -> dict[str, Any]:
    """The run's totals: the shards' counts summed, missing customers by reason."""
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for stats in repository.shard_stats(session, run_id):
        for key in SUM_KEYS:
            totals[key] += int(stats.get(key, 0))
        reasons.update({k: int(v) for k, v in stats.get("missing_by_reason", {}).items()})
    return {**{k: totals[k] for k in SUM_KEYS}, "missing_by_reason": dict(reasons)}


def fail_run(session: Session, run_id: uuid.UUID, error: str) -> None:
    """An operator-visible failure (source misconfigured): the run stops being Running."""
    repository.mark_run_failed(session, run_id, error)
    JOB_RUNS.labels(JOB, "failed").inc()


@dataclass(frozen=True, slots=True)
class KickPlan:
    to_start: list[date]  # days without any run
    to_resume: list[tuple[uuid.UUID, list[int]]]  # unfinished runs: shards to re-send


def plan_kick(session: Session, today: date, catchup_days: int) -> KickPlan:
    """Today and each of the last ``catchup_days`` days: start, resume or leave alone.

    A day with a finished run is done (gap repair fills single missing customers); a day
    whose latest run is unfinished gets its unfinished shards re-sent (idempotent); a
    day with no run at all (the scheduler was down) is started.
    """
    days = [today - timedelta(days=i) for i in range(catchup_days, -1, -1)]
    keys = [d.isoformat() for d in days]
    latest = repository.latest_runs(session, JOB, keys)
    to_start: list[date] = []
    to_resume: list[tuple[uuid.UUID, list[int]]] = []
    for day, key in zip(days, keys, strict=True):
        row = latest.get(key)
        if row is None or row.status == RunStatus.FAILED:
            to_start.append(day)
        elif row.finished_at is None:
            to_resume.append((row.run_id, repository.unfinished_shards(session, row.run_id)))
    return KickPlan(to_start, to_resume)
