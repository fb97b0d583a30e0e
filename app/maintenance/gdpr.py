"""GDPR (seed section 10.2): right of access (export) and right to erasure.

Export: one JSON document with every row about a customer, hot, archived and in cold
storage (``<table>_cold``, read through the manifests: app/maintenance/cold_gdpr.py):
the customer, balance checks, qualifications, notifications, delivery statuses, and the
audit entries about any of them (entity_id is one of their ids, or the JSON mentions
the customer's id).

Erasure: by default the customer is deactivated (soft delete, as the seed recommends:
balance checks, qualifications and SMS records are compliance records kept 7 years).
``anonymise=True`` also replaces names, phone, email and message bodies with fixed
placeholders (irreversible: nothing derived from the old values is kept), in hot and
archive tables and in cold storage (affected files rewritten: new file, new manifest,
old file removed), scrubs any remaining occurrence of those values from audit JSON, and
deletes the customer's messages at the carrier (Twilio ``DELETE .../Messages/{Sid}``),
recording what the carrier confirmed. audit_log is append-only, so the scrub of its hot
rows goes through the audit writer's ``audit_redact()`` (migration 0010), which records
each redaction so that ``audit verify`` accepts the new content (docs/security.md); cold
audit files keep each row's sealed ``row_hash`` (the seals still verify them, the
content check covers hot rows). Both operations write their own audit row
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
from sqlalchemy.orm import Session

from app.config import get_settings
from app.maintenance import cold_gdpr, erasure_journal
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository import audit as audit_repository
from app.maintenance.repository import gdpr as repository
from app.models import Customer
from app.phones import classify

SERVICE = "GdprService"
NAME_PLACEHOLDER = "ERASED"
PHONE_PLACEHOLDER = "ERASED"
BODY_PLACEHOLDER = "[erased]"
TEXT_PLACEHOLDER = "[erased]"


class GdprError(ValueError):
    """Unknown account and other operator errors."""


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def find_customer(session: Session, account: str) -> Customer:
    """The customer with this account number; GdprError if there is none."""
    customer = repository.customer_by_account(session, account)
    if customer is None:
        raise GdprError(f"no customer with account number {account!r}")
    return customer


def export(
    session: Session,
    account: str,
    *,
    operator: str | None = None,
    store: ColdStore | None = None,
) -> dict[str, Any]:
    """Every row about the customer, as plain dicts keyed by table (access is audited)."""
    customer = find_customer(session, account)
    cid = customer.id
    tables = repository.export_rows(session, cid)
    nids, eids = repository.related_ids(session, cid)
    tables.update(
        cold_gdpr.customer_rows(
            store or ColdStore.from_settings(), cid, {str(n) for n in nids}, {str(e) for e in eids}
        )
    )
    document: dict[str, Any] = {
        "format": "premium-notify-gdpr-export/1",
        "generated_at": _utcnow().isoformat(),
        "account_number": customer.account_number,
        "tables": tables,
    }
    document["counts"] = {name: len(rows) for name, rows in tables.items()}
    _audit(session, cid, "EXPORT", operator, {"counts": document["counts"]})
    return document


def erase(
    session: Session,
    account: str,
    *,
    anonymise: bool = False,
    operator: str | None = None,
    store: ColdStore | None = None,
    carrier: Any = None,
) -> dict[str, int]:
    """Deactivate the customer; with ``anonymise`` replace their personal data everywhere.

    Returns the number of rows changed per table. Idempotent: erasing twice changes
    nothing more (a second anonymisation finds no personal data left).
    """
    customer = find_customer(session, account)
    cid = customer.id
    now = _utcnow()
    counts: dict[str, int] = {}
    details: dict[str, Any] = {"anonymise": anonymise}
    counts["customers"] = repository.deactivate_customer(session, cid, now)
    if anonymise:
        store = store or ColdStore.from_settings()
        sids = repository.carrier_sids(session, cid) + cold_gdpr.notification_sids(store, cid)
        values = personal_values(customer)
        counts["customers"] += repository.anonymise_customer(session, cid, NAME_PLACEHOLDER, now)
        counts.update(
            repository.anonymise_notifications(session, cid, PHONE_PLACEHOLDER, BODY_PLACEHOLDER)
        )
        counts["audit_log"] = scrub_audit(session, cid, values)
        marks = cold_gdpr.Placeholders(PHONE_PLACEHOLDER, BODY_PLACEHOLDER, TEXT_PLACEHOLDER)
        counts.update(cold_gdpr.anonymise(store, cid, values, marks, run_id=f"gdpr-{now:%Y%m%d}"))
        details["carrier"] = delete_at_carrier(sorted(set(sids)), carrier)
    _audit(session, cid, "ERASE", operator, {**details, "changed": counts})
    # Outside the database and its backups, before the commit: restores re-apply it.
    erasure_journal.record(cid, anonymise=anonymise)
    session.expire(customer)
    return counts


def delete_at_carrier(sids: list[str], carrier: Any = None) -> dict[str, Any]:
    """Delete the messages at the carrier; what it confirmed, per outcome (SIDs only)."""
    from app.notifications.carrier import CarrierClient, CarrierConfigError, CarrierError

    outcome: dict[str, Any] = {"deleted": [], "not_found": [], "failed": []}
    if not sids:
        return outcome
    try:
        client = carrier or CarrierClient.from_settings()
    except CarrierConfigError:
        return {**outcome, "failed": sids, "error": "carrier not configured"}
    for sid in sids:
        try:
            outcome["deleted" if client.delete(sid) else "not_found"].append(sid)
        except CarrierError as exc:
            outcome["failed"].append(sid)
            outcome["error"] = str(exc)[:200]
    return outcome


def personal_values(customer: Customer) -> list[str]:
    """The strings to hunt for: names, email, the phone as stored and in national form."""
    phone = customer.phone_number or ""
    values = [customer.first_name, customer.last_name, customer.email or "", phone]
    # A contact value the import could not use is kept as given (and is personal data).
    values += [customer.phone_raw or "", customer.email_raw or ""]
    if phone:
        region = get_settings().default_phone_region
        verdict = classify(phone, region)
        try:  # its other spellings, even for a number the plan does not know (not valid)
            parsed = phonenumbers.parse(verdict.e164 or phone, region)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None:
            national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            values += [e164, national, re.sub(r"\D", "", national)]
    # Placeholders and very short fragments (an initial) would match everything.
    skip = {NAME_PLACEHOLDER, PHONE_PLACEHOLDER, BODY_PLACEHOLDER, ""}
    return sorted({v for v in values if v not in skip and len(v) >= 3}, key=len, reverse=True)


def scrub_audit(session: Session, cid: uuid.UUID, values: list[str]) -> int:
    """Replace the customer's personal values inside audit JSON (hot and archive).

    Candidates are found in SQL (the JSON text contains one of the values), rewritten
    in Python (a JSON walk: keys and strings), and written back through the audit
    writer's ``audit_redact()`` (the append-only trigger refuses any other UPDATE).
    """
    if not values:
        return 0
    pattern = re.compile("|".join(re.escape(v) for v in values), re.IGNORECASE)
    candidates = repository.audit_rows_containing(session, values)
    for table, row in candidates:
        new = {col: _scrub(row[col], pattern) for col in ("old_values", "new_values", "details")}
        audit_repository.redact_row(
            session,
            table,
            row["id"],
            old=_dumps(new["old_values"]),
            new=_dumps(new["new_values"]),
            details=_dumps(new["details"]),
        )
    return len(candidates)


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


def _audit(
    session: Session, cid: uuid.UUID, operation: str, operator: str | None, details: dict[str, Any]
) -> None:
    # Ids and counts only: this row must itself never need scrubbing.
    audit_repository.add_audit_row(
        session,
        entity_type="Customer",
        entity_id=cid,
        operation=f"GDPR_{operation}",
        user_id=(operator or "unknown")[:100],
        service_name=SERVICE,
        details=details,
    )
