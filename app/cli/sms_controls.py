"""``premium-notify sms pause|resume``: the kill switch of SMS sending (issue 20).

The switch is in the database (``sms_controls``, audited with the operator's name, and a
system event); every sender re-reads it within SMS_PAUSE_CHECK_SECONDS, finishes the
carrier call in flight and stops. Paused rows stay 'Queued'; the send batches come back
every SMS_PAUSED_RECHECK_SECONDS and carry on once sending is resumed, each row sent once.
"""

from __future__ import annotations

import uuid

import typer

from app.campaign import switch
from app.cli.common import console, operator
from app.cli.sms import sms_app
from app.config import get_settings
from app.db.audit import set_audit_context
from app.db.session import session_scope

REASON = typer.Option(None, "--reason", help="Why (kept in the audit trail and the event).")


def _flip(paused: bool, reason: str | None) -> tuple[bool, switch.SwitchState]:
    actor, correlation_id = operator(), uuid.uuid4()
    with session_scope() as session:
        set_audit_context(session, correlation_id, actor)
        changed = switch.set_paused(
            session, paused, changed_by=actor, reason=reason, correlation_id=correlation_id
        )
        state = switch.read(session)
    return changed, state


@sms_app.command("pause")
def pause(reason: str | None = REASON) -> None:
    """Stop sending SMS on every worker within seconds; queued messages stay queued."""
    changed, state = _flip(True, reason)
    if not changed:
        console.print(
            f"SMS sending was already paused by {state.source} ({state.changed_by}) "
            f"since {state.changed_at:%Y-%m-%d %H:%M} UTC"
        )
        return
    seconds = get_settings().sms_pause_check_seconds
    console.print(
        f"SMS sending paused: every worker stops within {seconds:g} s (after the carrier "
        "call in flight); queued messages stay queued. Resume: premium-notify sms resume"
    )


@sms_app.command("resume")
def resume(reason: str | None = REASON) -> None:
    """Let the workers send again: paused batches carry on, each message sent once."""
    changed, _ = _flip(False, reason)
    if not changed:
        console.print("SMS sending was not paused")
        return
    seconds = get_settings().sms_paused_recheck_seconds
    console.print(f"SMS sending resumed: paused send batches carry on within {seconds:g} s")
