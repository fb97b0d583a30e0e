"""Typed SQLAlchemy 2 models: the seed's seven tables, run bookkeeping, archives."""

from app.db.base import Base
from app.models.archive import ARCHIVE_TABLES
from app.models.audit import AuditLog, AuditSeal
from app.models.balance_check import DailyBalanceCheck
from app.models.callback_receipt import CallbackReceipt
from app.models.customer import Customer
from app.models.delivery import DeliveryStatus
from app.models.job_run import JobRun, JobShard
from app.models.notification import Notification
from app.models.opt_out import CustomerOptOut
from app.models.qualification import MonthlyQualification
from app.models.retired_partition import RetiredPartition
from app.models.sms_control import SmsControl
from app.models.system_event import SystemEvent

SEED_TABLES = (
    "customers",
    "daily_balance_checks",
    "monthly_qualifications",
    "notifications",
    "delivery_status",
    "audit_log",
    "system_events",
)

__all__ = [
    "ARCHIVE_TABLES",
    "SEED_TABLES",
    "AuditLog",
    "AuditSeal",
    "Base",
    "CallbackReceipt",
    "Customer",
    "CustomerOptOut",
    "DailyBalanceCheck",
    "DeliveryStatus",
    "JobRun",
    "JobShard",
    "MonthlyQualification",
    "RetiredPartition",
    "SmsControl",
    "Notification",
    "SystemEvent",
]
