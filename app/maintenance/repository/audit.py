"""audit_log writes of maintenance jobs: their own audit rows and the append-only bypass."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.models import AuditLog

_MAINTENANCE_ON = text("SET LOCAL app.audit_maintenance = 'on'")
_MAINTENANCE_OFF = text("SET LOCAL app.audit_maintenance = 'off'")


def set_audit_maintenance(session: Session, enabled: bool) -> None:
    """Open (or close) the append-only trigger's bypass until the transaction ends.

    With ``db roles`` applied the trigger also requires membership of the maintenance
    role, so this alone grants nothing to a worker.
    """
    session.execute(_MAINTENANCE_ON if enabled else _MAINTENANCE_OFF)


def add_audit_row(
    session: Session,
    *,
    entity_type: str,
    entity_id: uuid.UUID | None,
    operation: str,
    user_id: str,
    service_name: str,
    details: dict[str, Any],
    correlation_id: uuid.UUID | None = None,
) -> None:
    """Write one audit row in the caller's transaction (flushed now: it is part of the
    operation it describes, and a failure shows up here, not at commit)."""
    session.add(
        AuditLog(
            entity_type=entity_type,
            entity_id=entity_id,
            operation=operation,
            correlation_id=correlation_id,
            user_id=user_id,
            service_name=service_name,
            details=details,
        )
    )
    session.flush()
