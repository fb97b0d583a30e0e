"""SQL of the callback receiver (STYLE.md 3: queries live here; the caller owns the
transaction).

Applying a status callback locks its notification row (``FOR UPDATE``): the pollers
lock the same rows (``app.delivery.repository.apply_reports``), so a callback and a poll
of one message are applied one after the other, each seeing the other's history row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from app.delivery.mapping import Mapped
from app.models import CallbackReceipt, DeliveryStatus


@dataclass(frozen=True)
class Target:
    """The notification a callback names, as locked for applying it."""

    id: uuid.UUID
    submission_status: str | None
    sid: str | None


@dataclass(frozen=True)
class Latest:
    """A notification's latest delivery_status row."""

    status: str
    carrier_status: str | None
    final: bool
    attempts: int


_TARGET = "SELECT id, submission_status, carrier_reference_id FROM notifications"


def lock_notification(session: Session, notification_id: uuid.UUID) -> Target | None:
    row = session.execute(
        text(f"{_TARGET} WHERE id = :id FOR UPDATE"), {"id": notification_id}
    ).first()
    return Target(row[0], row[1], row[2]) if row else None


def lock_notification_by_sid(session: Session, sid: str) -> Target | None:
    """For callbacks to the id-less path: the notification the carrier's sid belongs to."""
    row = session.execute(
        text(f"{_TARGET} WHERE carrier_reference_id = :sid ORDER BY id LIMIT 1 FOR UPDATE"),
        {"sid": sid},
    ).first()
    return Target(row[0], row[1], row[2]) if row else None


_SETTLE = text(
    """
    UPDATE notifications
    SET submission_status = 'Submitted', carrier_reference_id = :sid,
        submission_timestamp = :now, error_code = NULL, status_reason = NULL, updated_at = :now
    WHERE id = :id AND submission_status IN ('Sending', 'Queued')
      AND carrier_reference_id IS NULL
    RETURNING id
    """
)


def settle_submitted(session: Session, notification_id: uuid.UUID, sid: str, now: datetime) -> bool:
    """A send the carrier has, recorded: 'Submitted' with its sid (only if not yet)."""
    row = session.execute(_SETTLE, {"id": notification_id, "sid": sid, "now": now}).first()
    return row is not None


def latest_delivery(session: Session, notification_id: uuid.UUID) -> Latest | None:
    row = session.execute(
        text(
            "SELECT status, carrier_status, final_status, attempts FROM delivery_status "
            "WHERE notification_id = :id ORDER BY created_at DESC, id DESC LIMIT 1"
        ),
        {"id": notification_id},
    ).first()
    return Latest(row[0], row[1], bool(row[2]), int(row[3] or 0)) if row else None


def add_delivery(
    session: Session,
    notification_id: uuid.UUID,
    mapped: Mapped,
    *,
    now: datetime,
    delivered_at: datetime | None,
    attempts: int,
) -> None:
    """A new history row. ``attempts`` carries on (it counts polls; a callback is not one)."""
    session.execute(
        insert(DeliveryStatus).values(
            notification_id=notification_id,
            status=str(mapped.status),
            status_code=mapped.status_code,
            failure_reason=mapped.failure_reason,
            delivery_timestamp=delivered_at,
            last_check_timestamp=now,
            attempts=attempts,
            final_status=mapped.final,
            created_at=now,
            updated_at=now,
            carrier_status=mapped.carrier_status,
        )
    )


def add_receipt(session: Session, **values: Any) -> None:
    """Append one receipt (``CallbackReceipt`` columns)."""
    session.execute(insert(CallbackReceipt).values(**values))


def event_exists(session: Session, event_type: str, notification_id: uuid.UUID) -> bool:
    """Whether a system event of this type already names the notification (raise once)."""
    return (
        session.execute(
            text(
                "SELECT 1 FROM system_events WHERE event_type = :t "
                "AND event_data->>'notification_id' = :id LIMIT 1"
            ),
            {"t": event_type, "id": str(notification_id)},
        ).first()
        is not None
    )


def customers_by_phone(session: Session, phone: str) -> list[uuid.UUID]:
    """Customers (not erased) whose number is ``phone`` (E.164), oldest first."""
    rows = session.execute(
        text(
            "SELECT id FROM customers WHERE phone_number = :p AND anonymised_at IS NULL "
            "ORDER BY created_at, id"
        ),
        {"p": phone},
    )
    return [r[0] for r in rows]


def schema_revision(session: Session) -> str | None:
    """The database's Alembic revision (None: not migrated)."""
    return session.execute(text("SELECT max(version_num) FROM alembic_version")).scalar()
