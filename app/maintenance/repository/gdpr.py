"""SQL of GDPR access and erasure: the customer's rows everywhere, and their rewriting.

Table names are formatted into some statements; they come from the fixed tuples here,
never from input. Values are always bound parameters.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, select, text
from sqlalchemy.orm import Session

from app.models import Customer

# (section of the export, SQL selecting its rows). :cid is the customer id,
# :nids the ids of all the customer's notifications (hot and archived).
_SECTIONS: tuple[tuple[str, str], ...] = (
    ("daily_balance_checks", "SELECT * FROM daily_balance_checks WHERE customer_id = :cid"),
    (
        "daily_balance_checks_archive",
        "SELECT * FROM daily_balance_checks_archive WHERE customer_id = :cid",
    ),
    ("monthly_qualifications", "SELECT * FROM monthly_qualifications WHERE customer_id = :cid"),
    (
        "monthly_qualifications_archive",
        "SELECT * FROM monthly_qualifications_archive WHERE customer_id = :cid",
    ),
    ("notifications", "SELECT * FROM notifications WHERE customer_id = :cid"),
    ("notifications_archive", "SELECT * FROM notifications_archive WHERE customer_id = :cid"),
    ("delivery_status", "SELECT * FROM delivery_status WHERE notification_id = ANY(:nids)"),
    (
        "delivery_status_archive",
        "SELECT * FROM delivery_status_archive WHERE notification_id = ANY(:nids)",
    ),
)
_ORDER = " ORDER BY created_at, id"
# Their STOP/START history (no phone number or message text is kept in it).
_OPT_OUTS = "SELECT * FROM customer_opt_outs WHERE customer_id = :cid ORDER BY recorded_at, id"
_AUDIT_TABLES = ("audit_log", "audit_log_archive")
NOTIFICATION_TABLES = ("notifications", "notifications_archive")
_JSON_COLUMNS = ("old_values", "new_values", "details")

_ENTITY_IDS = text(
    """
    SELECT :cid AS id
    UNION SELECT id FROM daily_balance_checks WHERE customer_id = :cid
    UNION SELECT id FROM daily_balance_checks_archive WHERE customer_id = :cid
    UNION SELECT id FROM monthly_qualifications WHERE customer_id = :cid
    UNION SELECT id FROM monthly_qualifications_archive WHERE customer_id = :cid
    UNION SELECT id FROM notifications WHERE customer_id = :cid
    UNION SELECT id FROM notifications_archive WHERE customer_id = :cid
    UNION SELECT id FROM customer_opt_outs WHERE customer_id = :cid
    """
)

_NOTIFICATION_IDS = text(
    "SELECT id FROM notifications WHERE customer_id = :cid "
    "UNION SELECT id FROM notifications_archive WHERE customer_id = :cid"
)

_DEACTIVATE = text(
    "UPDATE customers SET is_active = false, updated_at = :now "
    "WHERE id = :cid AND is_active IS DISTINCT FROM false"
)

_ANONYMISE_CUSTOMER = text(
    """
    UPDATE customers
    SET first_name = :name, last_name = :name, email = NULL, phone_number = NULL,
        phone_raw = NULL, email_raw = NULL, phone_status = 'MISSING', phone_is_valid_mobile = false,
        anonymised_at = :now, updated_at = :now
    WHERE id = :cid AND anonymised_at IS NULL
    """
)


def customer_by_account(session: Session, account: str) -> Customer | None:
    """The customer with this account number, if any."""
    return session.scalars(select(Customer).where(Customer.account_number == account)).one_or_none()


def _audit_where(table: str) -> str:
    # Entries whose entity is one of the customer's, or whose JSON names the customer.
    return (
        f"SELECT * FROM {table} WHERE entity_id = ANY(:eids) "
        "OR old_values::text LIKE :cid_like OR new_values::text LIKE :cid_like "
        "OR details::text LIKE :cid_like ORDER BY timestamp, id"
    )


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text(sql), params).mappings()]


def related_ids(session: Session, cid: uuid.UUID) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """(the customer's notification ids, ids of every entity about them), hot and archived."""
    nids = list(session.scalars(_NOTIFICATION_IDS, {"cid": cid}))
    eids = list(session.scalars(_ENTITY_IDS, {"cid": cid}))
    return nids, eids


def carrier_sids(session: Session, cid: uuid.UUID) -> list[str]:
    """Carrier message SIDs of the customer's notifications, hot and archived."""
    return [
        str(sid)
        for table in NOTIFICATION_TABLES
        for sid in session.scalars(
            text(
                f"SELECT carrier_reference_id FROM {table} WHERE customer_id = :cid "
                "AND carrier_reference_id IS NOT NULL"
            ),
            {"cid": cid},
        )
    ]


def export_rows(session: Session, cid: uuid.UUID) -> dict[str, list[dict[str, Any]]]:
    """Every row about the customer, hot and archived, keyed by table (customers first,
    the audit tables last): the customer, its checks, qualifications, notifications,
    their delivery statuses, its opt-out history, and the audit entries about any of
    them."""
    nids, eids = related_ids(session, cid)
    params: dict[str, Any] = {"cid": cid, "nids": nids, "eids": eids, "cid_like": f"%{cid}%"}
    tables = {"customers": _rows(session, "SELECT * FROM customers WHERE id = :cid", params)}
    for name, sql in _SECTIONS:
        tables[name] = _rows(session, sql + _ORDER, params)
    tables["customer_opt_outs"] = _rows(session, _OPT_OUTS, params)
    for table in _AUDIT_TABLES:
        tables[table] = _rows(session, _audit_where(table), params)
    return tables


def _rowcount(result: Any) -> int:
    # DML results are CursorResults; the typed Session.execute says Result.
    return int(getattr(result, "rowcount", 0) or 0)


def deactivate_customer(session: Session, cid: uuid.UUID, now: datetime) -> int:
    """Soft delete; 1 if the customer was active, 0 if it already was not."""
    return _rowcount(session.execute(_DEACTIVATE, {"cid": cid, "now": now}))


def anonymise_customer(session: Session, cid: uuid.UUID, name: str, now: datetime) -> int:
    """Names to ``name``, no email or phone; 0 if the customer was anonymised before."""
    return _rowcount(session.execute(_ANONYMISE_CUSTOMER, {"cid": cid, "name": name, "now": now}))


def anonymise_notifications(
    session: Session, cid: uuid.UUID, phone: str, body: str
) -> dict[str, int]:
    """Phone and message body to placeholders, hot and archived; rows changed per table."""
    return {
        table: _rowcount(
            session.execute(
                text(
                    f"UPDATE {table} SET phone_number = :phone, sms_content = :body "
                    "WHERE customer_id = :cid "
                    "AND (phone_number <> :phone OR sms_content <> :body)"
                ),
                {"cid": cid, "phone": phone, "body": body},
            )
        )
        for table in NOTIFICATION_TABLES
    }


def audit_rows_containing(session: Session, values: Sequence[str]) -> list[tuple[str, RowMapping]]:
    """(table, row with id and JSON columns) of the audit rows, hot and archived, whose JSON
    text contains one of ``values`` (case-insensitive)."""
    likes = {f"v{i}": f"%{_like_escape(v)}%" for i, v in enumerate(values)}
    cond = " OR ".join(f"{col}::text ILIKE :{key}" for key in likes for col in _JSON_COLUMNS)
    found: list[tuple[str, RowMapping]] = []
    for table in _AUDIT_TABLES:
        rows = session.execute(
            text(f"SELECT id, old_values, new_values, details FROM {table} WHERE {cond}"), likes
        ).mappings()
        found += [(table, row) for row in rows]
    return found


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
