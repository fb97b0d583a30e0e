"""Read-only questions the demo asks the database while it waits for the workers.

The workers fan in through PostgreSQL (docs/decisions.md 1: the database is the source
of truth), so the demo watches the same tables an operator would: ``job_runs`` for the
stages, the business tables for the progress bars. Counts only: nothing here reads a
name, a number or a balance. The SQL is in ``repository``; this module asks in the
demo's terms (a ``Month``, the submitted status).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from app.devtools.demo import repository
from app.models.enums import SubmissionStatus
from app.months import Month

SUBMITTED = str(SubmissionStatus.SUBMITTED)


def db_now(session: Session) -> datetime:
    """The database's clock (UTC, like every timestamp column): runs are compared to it."""
    return repository.db_now(session)


def active_customers(session: Session) -> int:
    """Active customers."""
    return repository.count_active_customers(session)


def month_checks(session: Session, month: Month) -> int:
    """Balance checks dated in ``month``."""
    return repository.count_checks_between(session, month.first, month.last)


def runs_by_status(session: Session, job: str, keys: list[str], since: datetime) -> dict[str, int]:
    """Distinct run keys of ``job`` started since ``since``, by their latest status."""
    return repository.latest_status_counts(session, job, keys, since)


def latest_run(session: Session, job: str, key: str, since: datetime) -> tuple[str, str | None]:
    """(status, error) of the newest run of ``job``/``key`` since ``since``; ('', None)."""
    return repository.latest_run(session, job, key, since)


def event_since(session: Session, event_type: str, since: datetime) -> str | None:
    """The description of the newest ``event_type`` system event since ``since``."""
    return repository.latest_event_description(session, event_type, since)


def qualified(session: Session, month: Month) -> int:
    """Customers qualified for ``month``."""
    return repository.count_qualified(session, month.first)


def notifications_by_status(session: Session, month: Month) -> dict[str, int]:
    """The month's notifications by submission status."""
    return repository.notification_status_counts(session, month.first)


def delivery_progress(session: Session, month: Month) -> tuple[int, int]:
    """(submitted messages of the month, those with a final delivery status)."""
    return repository.delivery_counts(session, month.first, SUBMITTED)


def delivery_by_status(session: Session, month: Month) -> dict[str, int]:
    """Latest delivery status of each submitted message of the month."""
    return repository.latest_delivery_status_counts(session, month.first, SUBMITTED)
