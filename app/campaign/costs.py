"""What the carrier says each message cost: its segment count and its price.

Neither is in the create's answer in general: through a Messaging Service a message
starts ``accepted`` with ``num_segments`` "0", and Twilio fills ``price`` in late (docs/
design.md, the twilio traps). Both arrive with the status: in status callbacks
(``NumSegments``, ``Price``, ``PriceUnit``) and in polled message resources. Whichever
comes first is recorded on the notification; later answers only fill in or correct.
Twilio's price is negative (a charge) in ``price_unit`` (e.g. USD); the month report
shows the absolute total.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.orm import Session

from app.campaign import repository as repo
from app.models.enums import Severity
from app.months import Month
from app.notifications.segments import GSM7_SINGLE, UCS2_SINGLE, Encoding, SegmentInfo
from app.notifications.templates import Template, check_length
from app.observability.events import record_event
from app.observability.metrics import SMS_COST

_UNIT = re.compile(r"^[A-Za-z]{3,8}$")
_MAX_PRICE = Decimal("9999999")  # numeric(12, 5): anything larger is not a message's price


@dataclass(frozen=True)
class Cost:
    segments: int | None
    price: Decimal | None
    unit: str | None

    @classmethod
    def parse(cls, segments: Any, price: Any, unit: Any) -> Cost | None:
        """From the carrier's strings ("2", "-0.01500", "USD"); None if nothing usable.
        ``num_segments`` "0" (a message not yet given a sender) is no count."""
        try:
            count: int | None = int(segments) if segments not in (None, "") else None
        except (TypeError, ValueError):
            count = None
        if count is not None and not 0 < count <= 1000:
            count = None
        amount: Decimal | None
        try:
            amount = Decimal(str(price)) if price not in (None, "") else None
        except (InvalidOperation, ValueError):
            amount = None
        if amount is not None and (not amount.is_finite() or abs(amount) > _MAX_PRICE):
            amount = None
        currency = str(unit).upper() if unit and _UNIT.match(str(unit)) else None
        if count is None and amount is None:
            return None
        return cls(count, amount, currency)

    def as_json(self, notification_id: uuid.UUID) -> dict[str, Any]:
        return {
            "id": str(notification_id),
            "segments": self.segments,
            "price": None if self.price is None else str(self.price),
            "unit": self.unit,
        }


def record(session: Session, costs: Sequence[tuple[uuid.UUID, Cost | None]]) -> int:
    """Record what the carrier said of these notifications (locked by the caller); returns
    how many were priced for the first time (counted in ``pn_sms_cost_total``)."""
    payload = [c.as_json(nid) for nid, c in costs if c is not None]
    priced = repo.record_costs(session, payload)
    for price, unit in priced:
        SMS_COST.labels(unit or "unknown").inc(float(abs(price)))
    return len(priced)


# --- warnings: a message longer than one segment costs more than one ----------------------

MULTI_SEGMENT_EVENT = "sms_multi_segment_messages"


def segment_warning(info: SegmentInfo, what: str = "this text") -> str | None:
    """A warning when ``info`` needs more than one segment (each is charged as a message)."""
    if info.segments <= 1:
        return None
    single = GSM7_SINGLE if info.encoding is Encoding.GSM7 else UCS2_SINGLE
    return (
        f"{what} needs {info.segments} {info.encoding} segments ({info.characters} "
        f"characters; one segment holds {single}): each message is charged "
        f"{info.segments} times"
    )


def prepare_warnings(
    template: Template, max_segments: int, multi_segment: int, queued: int
) -> list[str]:
    """What preparing a month warns of: the template itself, or long names, needing more
    than one segment."""
    floor = segment_warning(
        check_length(template, max_segments), f"template {template.name!r}, even with the "
        "shortest names,"
    )  # fmt: skip
    if floor is not None:
        return [floor]
    if multi_segment:
        return [f"{multi_segment} of {queued} messages need more than one segment (long "
                "names): each of those is charged more than once"]  # fmt: skip
    return []


def raise_month_warning(
    session: Session, month: Month, warnings: list[str], data: dict[str, Any],
    correlation_id: uuid.UUID | None,
) -> None:  # fmt: skip
    """The system event of a month's multi-segment messages, once per month."""
    if not warnings or repo.month_event_exists(session, MULTI_SEGMENT_EVENT, month):
        return
    record_event(
        session, MULTI_SEGMENT_EVENT, "; ".join(warnings), severity=Severity.WARNING,
        data={"month": str(month), **data}, correlation_id=correlation_id,
    )  # fmt: skip
