"""GDPR (seed section 10.2): right of access (export) and right to erasure.

Export: one JSON document with every row about a customer, hot and archived: the
customer, balance checks, qualifications, notifications, delivery statuses, and the
audit entries about any of them (entity_id is one of their ids, or the JSON mentions
the customer's id).

Erasure: by default the customer is deactivated (soft delete, as the seed recommends:
balance checks, qualifications and SMS records are compliance records kept 7 years).
``anonymise=True`` also replaces names, phone, email and message bodies with fixed
placeholders (irreversible: nothing derived from the old values is kept), in hot and
archive tables, and scrubs any remaining occurrence of those values from audit JSON.
audit_log is append-only, so that scrub runs as a privileged maintenance transaction
(``SET LOCAL app.audit_maintenance = 'on'``; with `db roles` applied the trigger also
requires membership of the maintenance role). Both operations write their own audit row
with ids and counts only. The account number is kept: it is the bank's own reference
that ties the kept compliance rows to the account.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.config import get_settings
from app.maintenance import erasure_journal
from app.models import AuditLog, Customer
from app.phones import classify

SERVICE = "GdprService"
NAME_PLACEHOLDER = "ERASED"
PHONE_PLACEHOLDER = "ERASED"
BODY_PLACEHOLDER = "[erased]"
TEXT_PLACEHOLDER = "[erased]"

# (section of the export, SQL selecting its rows). :cid is the customer id,
# :nids the ids of all the customer's notifications (hot and archived).
SECTIONS: tuple[tuple[str, str], ...] = (
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
ORDER = " ORDER BY created_at, id"

ENTITY_IDS = text(
    """
    SELECT :cid AS id
    UNION SELECT id FROM daily_balance_checks WHERE customer_id = :cid
    UNION SELECT id FROM daily_balance_checks_archive WHERE customer_id = :cid
    UNION SELECT id FROM monthly_qualifications WHERE customer_id = :cid
    UNION SELECT id FROM monthly_qualifications_archive WHERE customer_id = :cid
    UNION SELECT id FROM notifications WHERE customer_id = :cid
    UNION SELECT id FROM notifications_archive WHERE customer_id = :cid
    """
)

NOTIFICATION_IDS = text(
    "SELECT id FROM notifications WHERE customer_id = :cid "
    "UNION SELECT id FROM notifications_archive WHERE customer_id = :cid"
)


class GdprError(ValueError):
    """Unknown account and other operator errors."""


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def find_customer(session: Session, account: str) -> Customer:
    customer = session.scalars(
        select(Customer).where(Customer.account_number == account)
    ).one_or_none()
    if customer is None:
        raise GdprError(f"no customer with account number {account!r}")
    return customer


def _audit_where(table: str) -> str:
    # Entries whose entity is one of the customer's, or whose JSON names the customer.
    return (
        f"SELECT * FROM {table} WHERE entity_id = ANY(:eids) "
        "OR old_values::text LIKE :cid_like OR new_values::text LIKE :cid_like "
        "OR details::text LIKE :cid_like ORDER BY timestamp, id"
    )


def _rows(session: Session, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(r) for r in session.execute(text(sql), params).mappings()]


def export(session: Session, account: str, *, operator: str | None = None) -> dict[str, Any]:
    """Every row about the customer, as plain dicts keyed by table (access is audited)."""
    customer = find_customer(session, account)
    cid = customer.id
    nids = list(session.scalars(NOTIFICATION_IDS, {"cid": cid}))
    eids = list(session.scalars(ENTITY_IDS, {"cid": cid}))
    params: dict[str, Any] = {"cid": cid, "nids": nids, "eids": eids, "cid_like": f"%{cid}%"}
    document: dict[str, Any] = {
        "format": "premium-notify-gdpr-export/1",
        "generated_at": _utcnow().isoformat(),
        "account_number": customer.account_number,
        "tables": {
            "customers": _rows(session, "SELECT * FROM customers WHERE id = :cid", params),
        },
    }
    tables = document["tables"]
    for name, sql in SECTIONS:
        tables[name] = _rows(session, sql + ORDER, params)
    tables["audit_log"] = _rows(session, _audit_where("audit_log"), params)
    tables["audit_log_archive"] = _rows(session, _audit_where("audit_log_archive"), params)
    document["counts"] = {name: len(rows) for name, rows in tables.items()}
    _audit(session, cid, "EXPORT", operator, {"counts": document["counts"]})
    return document


def erase(
    session: Session, account: str, *, anonymise: bool = False, operator: str | None = None
) -> dict[str, int]:
    """Deactivate the customer; with ``anonymise`` replace their personal data everywhere.

    Returns the number of rows changed per table. Idempotent: erasing twice changes
    nothing more (a second anonymisation finds no personal data left).
    """
    customer = find_customer(session, account)
    cid = customer.id
    now = _utcnow()
    counts: dict[str, int] = {}
    counts["customers"] = _exec(
        session,
        "UPDATE customers SET is_active = false, updated_at = :now "
        "WHERE id = :cid AND is_active IS DISTINCT FROM false",
        {"cid": cid, "now": now},
    )
    if anonymise:
        values = personal_values(customer)
        counts["customers"] += _anonymise_customer(session, cid, now)
        for table in ("notifications", "notifications_archive"):
            counts[table] = _exec(
                session,
                f"UPDATE {table} SET phone_number = :phone, sms_content = :body "
                "WHERE customer_id = :cid AND (phone_number <> :phone OR sms_content <> :body)",
                {"cid": cid, "phone": PHONE_PLACEHOLDER, "body": BODY_PLACEHOLDER},
            )
        counts["audit_log"] = scrub_audit(session, cid, values)
    _audit(session, cid, "ERASE", operator, {"anonymise": anonymise, "changed": counts})
    # Outside the database and its backups, before the commit: restores re-apply it.
    erasure_journal.record(cid, anonymise=anonymise)
    session.expire(customer)
    return counts


def personal_values(customer: Customer) -> list[str]:
    """The strings to hunt for: names, email, the phone as stored and in national form."""
    phone = customer.phone_number or ""
    values = [customer.first_name, customer.last_name, customer.email or "", phone]
    if phone:
        verdict = classify(phone, get_settings().default_phone_region)
        if verdict.e164:
            national = phonenumbers.format_number(
                phonenumbers.parse(verdict.e164), phonenumbers.PhoneNumberFormat.NATIONAL
            )
            values += [verdict.e164, national, re.sub(r"\D", "", national)]
    # Placeholders and very short fragments (an initial) would match everything.
    skip = {NAME_PLACEHOLDER, PHONE_PLACEHOLDER, BODY_PLACEHOLDER, ""}
    return sorted({v for v in values if v not in skip and len(v) >= 3}, key=len, reverse=True)


def _anonymise_customer(session: Session, cid: uuid.UUID, now: datetime) -> int:
    return _exec(
        session,
        """
        UPDATE customers
        SET first_name = :name, last_name = :name, email = NULL, phone_number = NULL,
            phone_status = 'MISSING', phone_is_valid_mobile = false,
            anonymised_at = :now, updated_at = :now
        WHERE id = :cid AND anonymised_at IS NULL
        """,
        {"cid": cid, "name": NAME_PLACEHOLDER, "now": now},
    )


def scrub_audit(session: Session, cid: uuid.UUID, values: list[str]) -> int:
    """Replace the customer's personal values inside audit JSON (hot and archive).

    Candidates are found in SQL (the JSON text contains one of the values), rewritten
    in Python (a JSON walk: keys and strings), and written back in a privileged
    maintenance transaction, since the append-only trigger refuses UPDATE otherwise.
    """
    if not values:
        return 0
    pattern = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)
    likes = {f"v{i}": f"%{_like_escape(v)}%" for i, v in enumerate(values)}
    changed = 0
    session.execute(text("SET LOCAL app.audit_maintenance = 'on'"))
    for table in ("audit_log", "audit_log_archive"):
        cond = " OR ".join(
            f"{col}::text ILIKE :{key}"
            for key in likes
            for col in ("old_values", "new_values", "details")
        )
        rows = session.execute(
            text(f"SELECT id, old_values, new_values, details FROM {table} WHERE {cond}"), likes
        ).mappings()
        for row in list(rows):
            new = {
                col: _scrub(row[col], pattern) for col in ("old_values", "new_values", "details")
            }
            session.execute(
                text(
                    f"UPDATE {table} SET old_values = CAST(:old AS jsonb), "
                    "new_values = CAST(:new AS jsonb), details = CAST(:det AS jsonb) "
                    "WHERE id = :id"
                ),
                {
                    "id": row["id"],
                    "old": _dumps(new["old_values"]),
                    "new": _dumps(new["new_values"]),
                    "det": _dumps(new["details"]),
                },
            )
            changed += 1
    session.execute(text("SET LOCAL app.audit_maintenance = 'off'"))
    return changed


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(TEXT_PLACEHOLDER, value)
    if isinstance(value, list):
        return [_scrub(v, pattern) for v in value]
    if isinstance(value, dict):
        return {_scrub(k, pattern): _scrub(v, pattern) for k, v in value.items()}
    return value


def _exec(session: Session, sql: str, params: dict[str, Any]) -> int:
    result = session.execute(text(sql), params)
    return int(getattr(result, "rowcount", 0) or 0)


def _audit(
    session: Session, cid: uuid.UUID, operation: str, operator: str | None, details: dict[str, Any]
) -> None:
    # Ids and counts only: this row must itself never need scrubbing.
    session.add(
        AuditLog(
            entity_type="Customer",
            entity_id=cid,
            operation=f"GDPR_{operation}",
            user_id=(operator or "unknown")[:100],
            service_name=SERVICE,
            details=details,
        )
    )
    session.flush()
