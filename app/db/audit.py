"""The audit context of a transaction: who and which run caused the changes in it.

The statement-level audit triggers read ``app.correlation_id`` and ``app.user_id``
(transaction-local settings) into every audit row they write. This is the one place
that sets them, always with bound parameters (never by formatting values into SQL).
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

_SET = text(
    "SELECT set_config('app.correlation_id', :correlation_id, true),"
    " set_config('app.user_id', :user_id, true)"
)


def set_audit_context(
    session: Session, correlation_id: uuid.UUID | None, user_id: str | None = None
) -> None:
    """Tag every audited change of the current transaction (until it ends)."""
    session.execute(
        _SET,
        {
            "correlation_id": str(correlation_id) if correlation_id else "",
            "user_id": user_id or "",
        },
    )
