"""SQL of the campaign controls: opt-outs, the kill switch, cost, and their figures.

Nothing here commits: the caller owns the transaction. A customer's current choice is the
latest ``customer_opt_outs`` row (``recorded_at``, then the time-ordered id); no row at
all means opted in. Rows are appended only when they change that choice, so a repeated
STOP adds nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.orm import Session

from app.months import Month

OPTED_OUT = "OPTED_OUT"  # the outbox's skip reason (notifications.status_reason)

# The customer's current choice (true: opted out), for a customer id expression.
LATEST_CHOICE = (
    "COALESCE((SELECT o.opted_out FROM customer_opt_outs o WHERE o.customer_id = {customer} "
    "ORDER BY o.recorded_at DESC, o.id DESC LIMIT 1), false)"
)

# --- opt-outs -----------------------------------------------------------------------------

_ADD_CHOICES = text(
    f"""
    INSERT INTO customer_opt_outs (customer_id, opted_out, source, keyword, notification_id,
                                   message_sid, correlation_id, recorded_at)
    SELECT DISTINCT ON (v.customer_id) v.customer_id, v.opted_out, v.source, v.keyword,
           v.notification_id, v.message_sid, v.correlation_id, v.recorded_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(
        customer_id uuid, opted_out boolean, source text, keyword text, notification_id uuid,
        message_sid text, correlation_id uuid, recorded_at timestamp)
    WHERE {LATEST_CHOICE.format(customer="v.customer_id")} IS DISTINCT FROM v.opted_out
    RETURNING customer_id
    """
)


@dataclass(frozen=True)
class Choice:
    """One opt-out (``opted_out`` True) or opt-in of a customer, as it is recorded."""

    customer_id: uuid.UUID
    opted_out: bool
    source: str
    recorded_at: datetime
    keyword: str | None = None
    notification_id: uuid.UUID | None = None
    message_sid: str | None = None
    correlation_id: uuid.UUID | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": str(self.customer_id),
            "opted_out": self.opted_out,
            "source": self.source,
            "keyword": self.keyword,
            "notification_id": str(self.notification_id) if self.notification_id else None,
            "message_sid": self.message_sid,
            "correlation_id": str(self.correlation_id) if self.correlation_id else None,
            "recorded_at": self.recorded_at.isoformat(),
        }


def add_choices(session: Session, choices: Sequence[Choice]) -> list[uuid.UUID]:
    """Append the choices that change a customer's current one; returns those customers."""
    if not choices:
        return []
    rows = json.dumps([c.as_json() for c in choices])
    return [r[0] for r in session.execute(_ADD_CHOICES, {"rows": rows})]


def customers_of(session: Session, notification_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """notification id -> (customer id, correlation id) of those notifications."""
    rows = session.execute(
        text("SELECT id, customer_id, correlation_id FROM notifications WHERE id = ANY(:ids)"),
        {"ids": list(notification_ids)},
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def opted_out(session: Session, customer_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """The customers among ``customer_ids`` whose current choice is to be left alone."""
    rows = session.execute(
        text(
            "SELECT c FROM unnest(CAST(:ids AS uuid[])) AS c "
            f"WHERE {LATEST_CHOICE.format(customer='c')}"
        ),
        {"ids": [str(c) for c in customer_ids]},
    )
    return {r[0] for r in rows}


_SKIP_OPTED_OUT = text(
    f"""
    UPDATE notifications n
    SET submission_status = 'Skipped', status_reason = '{OPTED_OUT}', updated_at = LOCALTIMESTAMP
    WHERE n.batch_id = :batch_id AND n.submission_status = 'Queued'
      AND {LATEST_CHOICE.format(customer="n.customer_id")}
    RETURNING n.id
    """
)


def skip_opted_out(session: Session, batch_id: uuid.UUID) -> int:
    """Queued rows of the batch whose customer opted out since the month was prepared:
    'Skipped' (OPTED_OUT). Returns how many."""
    return len(session.execute(_SKIP_OPTED_OUT, {"batch_id": batch_id}).all())


# --- the kill switch ------------------------------------------------------------------------

_SWITCH = text(
    "SELECT paused, reason, source, changed_by, changed_at FROM sms_controls WHERE name = :name"
)
_SET_SWITCH = text(
    """
    INSERT INTO sms_controls (name, paused, reason, source, changed_by, changed_at,
                              correlation_id)
    VALUES (:name, :paused, :reason, :source, :changed_by, :now, :correlation_id)
    ON CONFLICT (name) DO UPDATE
    SET paused = EXCLUDED.paused, reason = EXCLUDED.reason, source = EXCLUDED.source,
        changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at,
        correlation_id = EXCLUDED.correlation_id
    WHERE sms_controls.paused IS DISTINCT FROM EXCLUDED.paused
    RETURNING id
    """
)


def read_switch(session: Session, name: str) -> tuple[Any, ...] | None:
    """(paused, reason, source, changed_by, changed_at) of the switch; None: never set."""
    row = session.execute(_SWITCH, {"name": name}).first()
    return None if row is None else tuple(row)


def set_switch(session: Session, name: str, *, paused: bool, **values: Any) -> bool:
    """Flip the switch (``reason``, ``source``, ``changed_by``, ``now``, ``correlation_id``);
    False if it already was in that position (nothing written)."""
    row = session.execute(_SET_SWITCH, {"name": name, "paused": paused, **values}).first()
    return row is not None


# --- cost -----------------------------------------------------------------------------------

# Only values that change something are written (a poll repeats what a callback said).
# The notifications are locked by the caller (callbacks and pollers lock them before
# applying a status), so ``old`` is what this update replaces.
_RECORD_COSTS = text(
    """
    WITH v AS (
        SELECT * FROM jsonb_to_recordset(CAST(:payload AS jsonb))
            AS v(id uuid, segments int, price numeric, unit text)
    ), old AS (
        SELECT n.id, n.carrier_segments, n.price FROM notifications n JOIN v ON v.id = n.id
    )
    UPDATE notifications n
    SET carrier_segments = COALESCE(v.segments, n.carrier_segments),
        price = COALESCE(v.price, n.price),
        price_unit = CASE WHEN v.price IS NULL THEN n.price_unit
                          ELSE COALESCE(v.unit, n.price_unit) END
    FROM v JOIN old ON old.id = v.id
    WHERE n.id = v.id
      AND (COALESCE(v.segments, n.carrier_segments) IS DISTINCT FROM n.carrier_segments
           OR COALESCE(v.price, n.price) IS DISTINCT FROM n.price
           OR (v.price IS NOT NULL AND v.unit IS DISTINCT FROM n.price_unit))
    RETURNING n.id, old.price IS NULL AND n.price IS NOT NULL AS newly_priced, n.price,
              n.price_unit
    """
)


def record_costs(session: Session, payload: list[dict[str, Any]]) -> list[tuple[Decimal, str]]:
    """Write segments and prices (``{id, segments, price, unit}``); returns (price, unit)
    of the messages priced for the first time."""
    if not payload:
        return []
    rows = session.execute(_RECORD_COSTS, {"payload": json.dumps(payload)})
    return [(r.price, r.price_unit or "") for r in rows if r.newly_priced]


# --- figures for the month report and status --------------------------------------------------

_MONTH = """
    FROM notifications n JOIN monthly_qualifications mq ON mq.id = n.qualification_id
    WHERE mq.qualification_month = :first
"""
_MONTH_FIGURES = text(
    f"""
    SELECT count(*) FILTER (WHERE n.submission_status = 'Skipped'
                            AND n.status_reason = '{OPTED_OUT}') AS skipped_opted_out,
           count(*) FILTER (WHERE n.submission_status = 'Failed'
                            AND n.error_code = '21610') AS refused_unsubscribed,
           COALESCE(sum(COALESCE(n.carrier_segments, n.segment_count, 1))
                    FILTER (WHERE n.carrier_reference_id IS NOT NULL), 0) AS segments,
           count(*) FILTER (WHERE n.carrier_reference_id IS NOT NULL
                            AND n.carrier_segments IS NULL) AS segments_estimated,
           count(*) FILTER (WHERE n.price IS NOT NULL) AS priced
    {_MONTH}
    """
)
_MONTH_COST = text(
    f"SELECT n.price_unit, sum(abs(n.price)) {_MONTH} AND n.price IS NOT NULL "
    "GROUP BY n.price_unit ORDER BY 2 DESC"
)


def month_figures(session: Session, month: Month) -> Row[Any]:
    """skipped_opted_out, refused_unsubscribed, segments, segments_estimated, priced."""
    return session.execute(_MONTH_FIGURES, {"first": month.first}).one()


def month_cost(session: Session, month: Month) -> list[tuple[str | None, Decimal]]:
    """The month's charged total per price unit, largest first."""
    return [(r[0], r[1]) for r in session.execute(_MONTH_COST, {"first": month.first})]


_OPT_OUT_COUNTS = text(
    """
    SELECT (SELECT count(*) FROM (
                SELECT DISTINCT ON (customer_id) opted_out FROM customer_opt_outs
                ORDER BY customer_id, recorded_at DESC, id DESC) latest
            WHERE latest.opted_out) AS opted_out,
           (SELECT count(*) FROM customer_opt_outs
            WHERE opted_out AND recorded_at >= :since) AS recent
    """
)


def opt_out_counts(session: Session, since: datetime) -> tuple[int, int]:
    """(customers opted out now, opt-outs recorded since ``since``)."""
    row = session.execute(_OPT_OUT_COUNTS, {"since": since}).one()
    return int(row[0]), int(row[1])


def month_event_exists(session: Session, event_type: str, month: Month) -> bool:
    """Whether a system event of this type already names the month (raise it once)."""
    found = session.execute(
        text(
            "SELECT 1 FROM system_events WHERE event_type = :t "
            "AND event_data->>'month' = :m LIMIT 1"
        ),
        {"t": event_type, "m": str(month)},
    ).first()
    return found is not None
