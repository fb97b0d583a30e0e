"""The tables that turn a carrier's answer into a delivery status (STYLE.md 5: tables,
not chains of ifs).

* ``STATUS_MAP``: Twilio's message status word -> the seed's delivery status. A word not
  in the table is *not guessed*: it is stored as ``Unknown`` (not final, polling goes on)
  with the raw word in ``carrier_status``, and raised as a system event.
* ``FAILURE_REASONS``: Twilio delivery error codes (30xxx) -> a sentence for people.
  A code not in the table keeps the carrier's own error message, or a generic sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.models.enums import DeliveryState

# (seed status, final?) for each status word Twilio documents for outbound messages.
STATUS_MAP: dict[str, tuple[DeliveryState, bool]] = {
    "accepted": (DeliveryState.PENDING, False),
    "scheduled": (DeliveryState.PENDING, False),
    "queued": (DeliveryState.PENDING, False),
    "sending": (DeliveryState.PENDING, False),
    "sent": (DeliveryState.PENDING, False),  # may stay forever: the deadline ends it
    "delivered": (DeliveryState.DELIVERED, True),
    "read": (DeliveryState.DELIVERED, True),  # WhatsApp/RCS: read implies delivered
    "undelivered": (DeliveryState.UNDELIVERABLE, True),
    "failed": (DeliveryState.FAILED, True),
    "canceled": (DeliveryState.FAILED, True),
}

FAILURE_REASONS: dict[int, str] = {
    30001: "Queue overflow: the carrier dropped the message from a full sending queue.",
    30002: "Account suspended: the carrier account could not send.",
    30003: "Unreachable destination handset: the phone is off or out of coverage.",
    30004: "Message blocked by the recipient or their operator.",
    30005: "Unknown destination handset: the number does not exist or is no longer in use.",
    30006: "Landline or unreachable carrier: the number cannot receive SMS.",
    30007: "Carrier violation: the message was filtered as spam or fraud.",
    30008: "Unknown error reported by the destination carrier.",
    30009: "Missing segment: part of a multi-part message was lost.",
    30010: "Message price exceeds the account's maximum price.",
    30017: "Carrier network congestion.",
    30018: "Destination carrier requires sender ID pre-registration.",
    30019: "Content size exceeds the carrier's limit.",
    30022: "US A2P 10DLC rate limit exceeded.",
    30023: "US A2P 10DLC daily cap reached.",
    30032: "Toll-free number not verified.",
    30034: "US A2P 10DLC: message from an unregistered number.",
    30044: "Message expired: its validity period ended before it could be delivered.",
    30450: "Message delivery blocked by the carrier (messaging policy).",
    30500: "Message delivery blocked: recipient opted out.",
}

# The sentence of a deadline-final status; the seed column is VARCHAR(255).
DEADLINE_REASON = (
    "Outcome unknown: the carrier gave no final status within {hours:g} hours "
    "(last carrier status: {carrier_status})."
)
UNKNOWN_STATUS_REASON = "The carrier reported a status this system does not know: {word!r}."


@dataclass(frozen=True)
class Mapped:
    """One carrier report mapped to the columns of a ``delivery_status`` row."""

    status: DeliveryState
    final: bool
    carrier_status: str
    status_code: str | None
    failure_reason: str | None
    known: bool  # False: the status word is not in STATUS_MAP


def failure_reason(code: int | None, carrier_message: str | None = None) -> str | None:
    """The sentence for a carrier error code (None when there is no code)."""
    if code is None:
        return None
    text = FAILURE_REASONS.get(code) or carrier_message or "Carrier error (no description)."
    return f"{code}: {text}"[:255]


def map_report(status_word: str, error_code: int | None, error_message: str | None) -> Mapped:
    """Map one carrier report; an unknown word is kept, never guessed."""
    word = (status_word or "").strip().lower()
    entry = STATUS_MAP.get(word)
    code = str(error_code) if error_code is not None else None
    if entry is None:
        reason = UNKNOWN_STATUS_REASON.format(word=word[:100])
        return Mapped(DeliveryState.UNKNOWN, False, word[:50], code, reason[:255], known=False)
    state, final = entry
    # A failure reason only for outcomes that are failures; a delivered message with a
    # leftover code keeps the code but needs no sentence.
    sentence = failure_reason(error_code, error_message) if state not in _OK_STATES else None
    return Mapped(state, final, word, code, sentence, known=True)


_OK_STATES = frozenset({DeliveryState.DELIVERED, DeliveryState.PENDING})


def backoff_schedule(spec: str) -> tuple[int, ...]:
    """``"1,2,5,10,30,60"`` -> (1, 2, 5, 10, 30, 60) minutes; the last one repeats."""
    values = tuple(int(part) for part in spec.split(",") if part.strip())
    if not values:
        raise ValueError("DELIVERY_BACKOFF_MINUTES needs at least one value")
    return values
