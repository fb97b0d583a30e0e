"""system_events: runs started/finished/failed, anomalies, outages, reconciler actions.

Descriptions and event_data carry ids and counts only, never personal data.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from app.models import SystemEvent
from app.models.enums import Severity


def record_event(
    session: Session,
    event_type: str,
    description: str,
    *,
    severity: Severity = Severity.INFO,
    service_name: str = "premium-notify",
    data: dict[str, Any] | None = None,
    correlation_id: uuid.UUID | None = None,
) -> SystemEvent:
    """Add a system event to the caller's transaction."""
    event = SystemEvent(
        event_type=event_type,
        severity=str(severity),
        service_name=service_name,
        description=description,
        event_data=data or {},
        correlation_id=correlation_id,
    )
    session.add(event)
    return event
