"""Read-only delivery reports: failures of a month by reason (seed index
``idx_delivery_undelivered``: the partial index on ``status WHERE status != 'Delivered'``).

The month is the qualification month (as in ``report month``): one message per qualified
customer. Only final rows count: under first-final-wins each message has at most one,
so every message is counted once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models.enums import DeliveryState
from app.months import Month

FAILED_STATES = (
    str(DeliveryState.UNDELIVERABLE),
    str(DeliveryState.FAILED),
    str(DeliveryState.UNKNOWN),
)

# ``ds.status <> 'Delivered'`` repeats the partial index's predicate so the planner can
# use idx_delivery_undelivered (a few % of the rows) instead of scanning the history.
_BY_REASON = text(
    """
    SELECT ds.status, COALESCE(ds.status_code, '') AS status_code,
           COALESCE(ds.failure_reason, '') AS failure_reason, count(*) AS messages
    FROM delivery_status ds
    JOIN notifications n ON n.id = ds.notification_id
    JOIN monthly_qualifications mq ON mq.id = n.qualification_id
    WHERE ds.status <> 'Delivered' AND ds.status = ANY(:states) AND ds.final_status
      AND mq.qualification_month = :first
    GROUP BY 1, 2, 3
    ORDER BY messages DESC, 1, 2
    """
)

_MESSAGES = text(
    """
    SELECT n.id AS notification_id, n.carrier_reference_id AS carrier_sid, ds.status,
           ds.carrier_status, ds.status_code, ds.failure_reason,
           n.submission_timestamp, ds.created_at AS final_at, ds.attempts
    FROM delivery_status ds
    JOIN notifications n ON n.id = ds.notification_id
    JOIN monthly_qualifications mq ON mq.id = n.qualification_id
    WHERE ds.status <> 'Delivered' AND ds.status = ANY(:states) AND ds.final_status
      AND mq.qualification_month = :first
    ORDER BY ds.status, ds.status_code NULLS LAST, n.submission_timestamp, n.id
    """
)

BY_REASON_COLUMNS = ("status", "status_code", "failure_reason", "messages")
MESSAGE_COLUMNS = (
    "notification_id",
    "carrier_sid",
    "status",
    "carrier_status",
    "status_code",
    "failure_reason",
    "submission_timestamp",
    "final_at",
    "attempts",
)


def failures_by_reason(session: Session, month: Month) -> list[dict[str, Any]]:
    """Undeliverable / Failed / Unknown messages of the month, counted by reason."""
    rows = session.execute(_BY_REASON, {"first": month.first, "states": list(FAILED_STATES)})
    return [dict(r._mapping) for r in rows]


def failed_messages(session: Session, month: Month) -> Iterator[dict[str, Any]]:
    """One row per failed message (ids and codes only: no phone number, no text)."""
    result = session.execute(
        _MESSAGES,
        {"first": month.first, "states": list(FAILED_STATES)},
        execution_options={"yield_per": 2000},
    )
    for row in result:
        yield dict(row._mapping)
