"""The delivery history: recording carrier reports (first final status wins).

A change of carrier status adds a ``delivery_status`` row; a report that changes nothing
touches the latest row (``last_check_timestamp``, ``attempts``); nothing is written after
a final row (a contradicting final report is handed back to be raised as an event).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from app.delivery.mapping import Mapped
from app.models import DeliveryStatus


@dataclass(frozen=True)
class Report:
    """What the carrier said about one notification (or the deadline's verdict)."""

    notification_id: uuid.UUID
    mapped: Mapped
    delivered_at: datetime | None = None
    deadline: bool = False  # synthetic: never a contradiction of an earlier final row


@dataclass
class ApplyResult:
    inserted: list[tuple[uuid.UUID, Mapped]]
    touched: int = 0
    ignored_after_final: int = 0
    contradictions: list[dict[str, Any]] | None = None


_LOCK = text("SELECT id FROM notifications WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")
_LATEST_ROWS = text(
    """
    SELECT DISTINCT ON (notification_id) id, notification_id, status, carrier_status,
           status_code, final_status, attempts
    FROM delivery_status WHERE notification_id = ANY(:ids)
    ORDER BY notification_id, created_at DESC, id DESC
    """
)
_TOUCH = text(
    """
    UPDATE delivery_status
    SET last_check_timestamp = :now, updated_at = :now, attempts = COALESCE(attempts, 0) + 1
    WHERE id = ANY(:ids)
    """
)


def apply_reports(session: Session, reports: Sequence[Report], now: datetime) -> ApplyResult:
    """Record carrier reports: a new row on change, a touch otherwise, first final wins.

    The notifications are locked (in id order, so two pollers never deadlock) and their
    latest rows re-read under the lock: a concurrent poller's row is seen, not doubled.
    """
    result = ApplyResult(inserted=[], contradictions=[])
    if not reports:
        return result
    ids = sorted({r.notification_id for r in reports})
    session.execute(_LOCK, {"ids": ids})
    latest = {row.notification_id: row for row in session.execute(_LATEST_ROWS, {"ids": ids})}
    rows: list[dict[str, Any]] = []
    touch: list[uuid.UUID] = []
    done: set[uuid.UUID] = set()
    for report in reports:
        nid, m = report.notification_id, report.mapped
        if nid in done:
            continue  # the same message twice in one batch: keep the first
        done.add(nid)
        current = latest.get(nid)
        if current is not None and current.final_status:
            if m.final and not report.deadline and m.status != current.status:
                result.contradictions.append(  # type: ignore[union-attr]
                    {
                        "notification_id": str(nid),
                        "final_status": current.status,
                        "final_carrier_status": current.carrier_status,
                        "reported_status": str(m.status),
                        "reported_carrier_status": m.carrier_status,
                        "reported_code": m.status_code,
                    }
                )
            else:
                result.ignored_after_final += 1
            continue
        unchanged = (
            current is not None
            and current.status == str(m.status)
            and current.carrier_status == m.carrier_status
            and current.status_code == m.status_code
            and not report.deadline
        )
        if unchanged and current is not None:
            touch.append(current.id)
            continue
        attempts = (int(current.attempts or 0) if current is not None else 0) + (
            0 if report.deadline else 1
        )
        rows.append(
            {
                "notification_id": nid,
                "status": str(m.status),
                "status_code": m.status_code,
                "failure_reason": m.failure_reason,
                "delivery_timestamp": report.delivered_at,
                "last_check_timestamp": now,
                "attempts": attempts,
                "final_status": m.final,
                "created_at": now,
                "updated_at": now,
                "carrier_status": m.carrier_status,
            }
        )
        result.inserted.append((nid, m))
    if rows:
        session.execute(insert(DeliveryStatus), rows)
    if touch:
        session.execute(_TOUCH, {"ids": touch, "now": now})
    result.touched = len(touch)
    return result


def already_reported(session: Session, event_type: str, notification_ids: list[str]) -> set[str]:
    """Notification ids that already have a system event of this type (raise each once)."""
    if not notification_ids:
        return set()
    rows = session.execute(
        text(
            "SELECT DISTINCT event_data->>'notification_id' FROM system_events "
            "WHERE event_type = :t AND event_data->>'notification_id' = ANY(:ids)"
        ),
        {"t": event_type, "ids": notification_ids},
    )
    return {r[0] for r in rows}
