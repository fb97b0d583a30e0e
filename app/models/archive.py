"""Archive tables for retention (seed section 9.2: ``CREATE TABLE … _archive LIKE …``).

Each has the hot table's columns (no foreign keys, so archived rows outlive their
parents' archival order) plus ``archived_at``, and one index on the column the
retention job and the cold-storage export select by.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Column, DateTime, Index, Table, text

from app.db.base import Base
from app.models.audit import AuditLog
from app.models.balance_check import DailyBalanceCheck
from app.models.delivery import DeliveryStatus
from app.models.notification import Notification
from app.models.qualification import MonthlyQualification


def _archive_of(hot: Table, date_column: str) -> Table:
    columns = [
        Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key) for c in hot.columns
    ]
    name = f"{hot.name}_archive"
    return Table(
        name,
        Base.metadata,
        *columns,
        Column("archived_at", DateTime(), nullable=False, server_default=text("CURRENT_TIMESTAMP")),
        Index(f"idx_{name}_{date_column}", date_column),
    )


daily_balance_checks_archive = _archive_of(cast(Table, DailyBalanceCheck.__table__), "check_date")
monthly_qualifications_archive = _archive_of(
    cast(Table, MonthlyQualification.__table__), "qualification_month"
)
notifications_archive = _archive_of(cast(Table, Notification.__table__), "created_at")
delivery_status_archive = _archive_of(cast(Table, DeliveryStatus.__table__), "created_at")
audit_log_archive = _archive_of(cast(Table, AuditLog.__table__), "timestamp")

ARCHIVE_TABLES = {
    t.name: t
    for t in (
        daily_balance_checks_archive,
        monthly_qualifications_archive,
        notifications_archive,
        delivery_status_archive,
        audit_log_archive,
    )
}
