"""The audit context of a transaction, and the one way application code writes audit rows.

The statement-level audit triggers read ``app.correlation_id`` and ``app.user_id``
(transaction-local settings) into every audit row they write. ``set_audit_context`` is
the one place that sets them, always with bound parameters.

``app.user_id`` is a claim, not an identity: the audit functions (migration 0010) record
``session_user`` beside it in ``db_user``, and rewrite any ``cli:...`` claim to
``cli:<session_user>``. A person at the CLI is therefore named by the database login
they authenticated with (``operator_label``), never by ``$USER``.

Application roles cannot INSERT into ``audit_log``; ``record`` calls the SECURITY DEFINER
``audit_record()``, which sets the time, the login, the row hash and the seal itself.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

CLI = "cli"  # the claim the audit functions turn into cli:<session_user>

_SET = text(
    "SELECT set_config('app.correlation_id', :correlation_id, true),"
    " set_config('app.user_id', :user_id, true)"
)
_RECORD = text(
    "SELECT public.audit_record(:entity_type, :entity_id, :operation, :service_name,"
    " CAST(:details AS jsonb), :correlation_id, :user_id)"
)
_LOGIN = text("SELECT session_user")


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


def record(
    session: Session,
    *,
    entity_type: str,
    entity_id: uuid.UUID | None,
    operation: str,
    service_name: str,
    details: dict[str, Any] | None,
    user_id: str | None = None,
    correlation_id: uuid.UUID | None = None,
) -> None:
    """Write one audit row in the caller's transaction, through ``audit_record()``.

    ``user_id`` (else the transaction's ``app.user_id``) is the claimed actor; the row also
    carries the database login and the server's time, whatever the caller says.
    """
    session.execute(
        _RECORD,
        {
            "entity_type": entity_type,
            "entity_id": entity_id,
            "operation": operation,
            "service_name": service_name,
            "details": None if details is None else json.dumps(details, default=str),
            "correlation_id": correlation_id,
            "user_id": user_id,
        },
    )


def operator_label(session: Session | None = None) -> str:
    """``cli:<database login>``: who a CLI command acts as, from the authenticated database
    session (the audit functions enforce the same rule, so a forged label is rewritten)."""
    if session is not None:
        return f"{CLI}:{session.scalar(_LOGIN)}"
    from app.db.session import get_engine

    with get_engine().connect() as conn:
        return f"{CLI}:{conn.scalar(_LOGIN)}"
