"""audit_log writes of maintenance jobs: their own audit rows and redaction.

None of this is DML on audit_log by the application role: each call is one of the audit
writer's SECURITY DEFINER functions (migration 0010), which alone may rewrite a row's
JSON for an erasure (``audit_redact``, itself recorded, so ``audit verify`` accepts the
new content). Audit rows leave the database only by partition (migrations 0011, 0012).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.db import audit

_REDACT = text(
    "SELECT public.audit_redact(:table, :id, CAST(:old AS jsonb), CAST(:new AS jsonb),"
    " CAST(:det AS jsonb))"
)


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
    """Write one audit row in the caller's transaction (part of the operation it
    describes: a failure shows up here, not at commit)."""
    audit.record(
        session,
        entity_type=entity_type,
        entity_id=entity_id,
        operation=operation,
        user_id=user_id,
        service_name=service_name,
        details=details,
        correlation_id=correlation_id,
    )


def redact_row(
    session: Session,
    table: str,
    row_id: uuid.UUID,
    old: str | None,
    new: str | None,
    details: str | None,
) -> int:
    """Replace the JSON columns of one audit row (hot or archived); 1 if it exists."""
    return int(
        session.scalar(
            _REDACT, {"table": table, "id": row_id, "old": old, "new": new, "det": details}
        )
        or 0
    )
