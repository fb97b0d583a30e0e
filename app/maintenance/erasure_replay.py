"""Re-apply journalled GDPR erasures to a restored database, before workers see it.

Called by every restore path (``db restore`` of a logical export, ``db pitr``) with the
point the restored data stands at. Entries newer than that point minus a margin are
re-applied through ``gdpr.erase`` itself, in journal order. The margin covers an erasure
journalled just before the restored point but committed just after it; an entry whose
effect is already in the restored data is skipped without writing anything, so the
margin costs nothing. A customer missing from the restored data (created after it) has
nothing to erase.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from app.config import Settings, get_settings
from app.db.session import SessionScope, build_engine
from app.maintenance import erasure_journal, gdpr
from app.models import Customer

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=5)


@dataclass
class ReplayReport:
    journal_entries: int = 0
    considered: int = 0
    applied: int = 0
    already_erased: int = 0
    unknown_customer: int = 0
    applied_ids: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One line for operators (counts only, no ids of customers)."""
        return (
            f"erasure journal: {_n(self.journal_entries, 'entry', 'entries')}, "
            f"{self.considered} newer than the restored point: {self.applied} re-applied, "
            f"{self.already_erased} already in effect, {self.unknown_customer} for customers "
            "not in the restored data"
        )


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def reapply(
    scope: SessionScope,
    since: datetime | None,
    *,
    settings: Settings | None = None,
    identity: Path | None = None,
    margin: timedelta = MARGIN,
) -> ReplayReport:
    """Re-apply the erasures journalled after ``since`` (UTC, naive; None = all).

    Takes a ``SessionScope`` on the restored database: one transaction per entry, so a
    failure leaves the earlier ones applied and the run can simply be repeated.
    """
    entries = erasure_journal.read(settings or get_settings(), identity)
    report = ReplayReport(journal_entries=len(entries))
    cutoff = None if since is None else since - margin
    for entry in entries:
        if cutoff is not None and entry.at < cutoff:
            continue
        report.considered += 1
        with scope() as session:
            customer = session.get(Customer, entry.customer_id)
            if customer is None:
                report.unknown_customer += 1
                continue
            if _in_effect(customer, entry):
                report.already_erased += 1
                continue
            with erasure_journal.replaying():
                gdpr.erase(
                    session,
                    customer.account_number,
                    anonymise=entry.anonymise,
                    operator=f"restore:erasure-journal:{entry.id}",
                )
            report.applied += 1
            report.applied_ids.append(str(entry.id))
    log.info("erasure journal replayed", extra={"applied": report.applied})
    return report


def _in_effect(customer: Customer, entry: erasure_journal.Entry) -> bool:
    if customer.is_active is not False:
        return False
    return not entry.anonymise or customer.anonymised_at is not None


def scope_on(url: str) -> tuple[SessionScope, Engine]:
    """A ``SessionScope`` on a database that is not the process's own (a restore target).

    The caller disposes of the engine when done.
    """
    engine = build_engine(url, poolclass=NullPool)
    factory = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def scope() -> Iterator[Session]:
        with factory.begin() as session:  # commit, or roll back on error; then close
            yield session

    return scope, engine
