"""What an operator needs at a glance: recent runs per stage, queues, dead letters, stuck rows,
whether SMS sending is paused and how many customers opted out.

Generic over ``job_runs``: every stage that records runs shows up without this module
knowing it (balance_checks, gap_repair, qualification, notifications, retention, ...).
Counts from ``job_runs.stats`` (checked, missing, rejected, moved, ...) are shown as they
are: only numbers and short words, never personal data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.campaign.report import status_summary as campaign_status
from app.maintenance import dlq
from app.maintenance.repository import status as repository


@dataclass(frozen=True)
class StuckThresholds:
    queued: timedelta
    sending: timedelta
    delivery: timedelta

    @classmethod
    def from_settings(cls) -> StuckThresholds:
        from app.config import get_settings

        s = get_settings()
        return cls(
            queued=timedelta(minutes=s.ops_stuck_queued_minutes),
            sending=timedelta(minutes=s.ops_stuck_sending_minutes),
            delivery=timedelta(hours=s.delivery_deadline_hours),
        )


@dataclass
class Status:
    runs: list[dict[str, Any]] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)
    broker_error: str | None = None
    sms: dict[str, Any] = field(default_factory=dict)  # kill switch and opt-outs (issue 20)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _stats_summary(stats: dict[str, Any]) -> str:
    """``checked=100 missing=2``: scalar stats only (nested ones are for machines)."""

    def shown(v: Any) -> bool:
        return isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 40)

    return " ".join(f"{k}={v}" for k, v in sorted(stats.items()) if shown(v))


def recent_runs(
    session: Session, per_job: int = 3, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The newest ``per_job`` runs of every job, with duration and a stats summary."""
    now = now or _utcnow()
    rows = []
    for r in repository.recent_runs(session, per_job):
        end = r["finished_at"] or now
        rows.append(
            {
                "run_id": str(r["id"]),
                "job": r["job"],
                "run_key": r["run_key"],
                "status": r["status"],
                "triggered_by": r["triggered_by"],
                "started_at": r["started_at"],
                "finished_at": r["finished_at"],
                "duration_s": round((end - r["started_at"]).total_seconds(), 1),
                "stats": dict(r["stats"] or {}),
                "summary": _stats_summary(dict(r["stats"] or {})),
                "error": (r["error"] or "")[:200] or None,
                "stale": bool(r["stale"]),  # Running, but its process stopped renewing
                "heartbeat_at": r["heartbeat_at"],
                "lease_owner": r["lease_owner"],
            }
        )
    return rows


def stuck_rows(
    session: Session, thresholds: StuckThresholds, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Outbox rows queued, sending or awaiting a final delivery status for too long."""
    now = now or _utcnow()
    counts = repository.stuck_counts(
        session,
        queued_before=now - thresholds.queued,
        sending_before=now - thresholds.sending,
        delivery_before=now - thresholds.delivery,
    )
    limits = {
        "queued": thresholds.queued,
        "sending": thresholds.sending,
        "awaiting_final_delivery": thresholds.delivery,
    }
    return [
        {
            "kind": r["kind"],
            "rows": int(r["rows"]),
            "older_than": str(limits[r["kind"]]),
            "oldest": r["oldest"],
        }
        for r in counts
    ]


def queue_rows(broker: dlq.BrokerView, now_ms: float | None = None) -> list[dict[str, Any]]:
    """Depth, delayed, in-flight-free oldest age and dead letters of every queue."""
    now_ms = now_ms if now_ms is not None else datetime.now(UTC).timestamp() * 1000
    client = broker.client
    rows = []
    dead = dlq.counts(broker)
    for queue in broker.queues:
        key = f"{dlq.NAMESPACE}:{queue}"
        pipe = client.pipeline(transaction=False)
        pipe.llen(key)
        pipe.llen(f"{key}.DQ")
        pipe.lindex(key, 0)
        depth, delayed, head = pipe.execute()
        oldest = None
        if head is not None:
            raw = client.hget(f"{key}.msgs", head)
            oldest = _age_seconds(raw, now_ms)
        rows.append(
            {
                "queue": queue,
                "waiting": int(depth),
                "delayed": int(delayed),
                "dead_letters": dead[queue],
                "oldest_waiting_s": oldest,
            }
        )
    return rows


def _age_seconds(raw: bytes | str | None, now_ms: float) -> float | None:
    if raw is None:
        return None
    try:
        return round(max(0.0, now_ms - float(json.loads(raw)["message_timestamp"])) / 1000, 1)
    except (ValueError, KeyError, TypeError):
        return None


def collect(
    session: Session,
    broker: dlq.BrokerView | None,
    *,
    per_job: int = 3,
    thresholds: StuckThresholds | None = None,
) -> Status:
    """Everything ``premium-notify status`` shows. A broker outage is reported, not raised:
    the database half of the picture matters most when Redis is down."""
    status = Status(
        runs=recent_runs(session, per_job),
        stuck=stuck_rows(session, thresholds or StuckThresholds.from_settings()),
        sms=campaign_status(session),
    )
    if broker is None:
        status.broker_error = "REDIS_URL is not set"
    else:
        try:
            status.queues = queue_rows(broker)
        except Exception as exc:  # noqa: BLE001 - any broker failure is shown, not fatal
            status.broker_error = f"{type(exc).__name__}: {str(exc)[:200]}"
    return status
