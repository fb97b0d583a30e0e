"""The campaign controls' settings (fields of ``app.config.Settings``; docs/campaign.md).

Declared here, with their bounds and meanings, to keep app/config.py under the module
size limit; ``Settings`` names each one (SMS_PAUSE_CHECK_SECONDS, ...). Imports nothing
from the application (app.config imports this module).
"""

from __future__ import annotations

from pydantic import Field

PAUSE_CHECK_SECONDS = Field(
    default=2.0, ge=0, le=30, description="Senders re-read the kill switch (sms pause) from "
    "the database at most this long after their last read.",
)  # fmt: skip
PAUSED_RECHECK_SECONDS = Field(
    default=15.0, gt=0, description="While sending is paused, a send batch re-enqueues "
    "itself after this long (its rows stay Queued).",
)  # fmt: skip
BREAKER_WINDOW_SECONDS = Field(
    default=300.0, gt=0, description="The circuit breaker judges each sender's carrier "
    "answers of this many past seconds.",
)  # fmt: skip
BREAKER_MIN_ATTEMPTS = Field(
    default=20, ge=0, description="Carrier answers a window needs before the breaker may "
    "pause sending; 0 = no automatic pause.",
)  # fmt: skip
BREAKER_FAILURE_RATE = Field(
    default=0.5, gt=0, le=1, description="Pause sending when at least this share of a "
    "window's answers are permanent refusals (21610, an opt-out, excluded).",
)  # fmt: skip
BREAKER_ERROR_RATE = Field(
    default=0.0, ge=0, le=1, description="Pause sending when at least this share of a "
    "window's answers are errors of any kind (429, 5xx, timeouts too); 0 = off (backoff "
    "handles an outage).",
)  # fmt: skip
