"""Status vocabularies stored as VARCHAR (the seed's types), typed as StrEnum in Python."""

from __future__ import annotations

from enum import StrEnum


class PhoneStatus(StrEnum):
    MOBILE = "MOBILE"  # valid number whose type is mobile (or fixed-line-or-mobile)
    NOT_MOBILE = "NOT_MOBILE"  # valid number, but a landline, toll-free, ...: cannot qualify
    INVALID = "INVALID"  # does not parse or is not a valid number
    MISSING = "MISSING"  # no number on file


class SubmissionStatus(StrEnum):
    QUEUED = "Queued"  # in the outbox, not yet claimed
    SENDING = "Sending"  # claimed by a worker; carrier call may be in flight
    SUBMITTED = "Submitted"  # the carrier accepted it (carrier_reference_id set)
    FAILED = "Failed"  # permanently refused by the carrier
    SKIPPED = "Skipped"  # not sent on purpose (status_reason says why)


class DeliveryState(StrEnum):
    PENDING = "Pending"
    DELIVERED = "Delivered"
    UNDELIVERABLE = "Undeliverable"
    FAILED = "Failed"
    UNKNOWN = "Unknown"  # carrier status not in the mapping table, or deadline passed


class DisqualificationReason(StrEnum):
    """In the order they are listed in ``disqualification_reason``."""

    INACTIVE = "INACTIVE"
    MISSING_DATA = "MISSING_DATA"
    BELOW_THRESHOLD = "BELOW_THRESHOLD"
    INVALID_PHONE = "INVALID_PHONE"


class RunStatus(StrEnum):
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"
