"""The daily balance checks (core banking, EOD files) and the monthly qualification.

One group of :class:`app.config.Settings`; the fields keep their environment names."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class IntakeSettings(BaseModel):
    # --- core banking ---------------------------------------------------------------
    core_banking_url: str | None = Field(
        default=None, description="Base URL of the core-banking balance API (docs/balances.md)."
    )
    core_banking_api_token: SecretStr | None = Field(
        default=None, description="Bearer token of the core-banking API (secret; *_FILE accepted)."
    )
    core_banking_timeout_seconds: float = Field(default=10.0, gt=0, description="Per request.")
    core_banking_batch_size: int = Field(
        default=500, ge=1, le=5000, description="Accounts per POST /v1/balances:batch request."
    )
    core_banking_max_retries: int = Field(
        default=4, ge=0, description="Retries (exponential backoff) on 5xx, 429 and timeouts."
    )
    core_banking_rps: float = Field(
        default=50.0, ge=0, description="Requests per second across all workers; 0 = no limit."
    )
    core_banking_pool_size: int = Field(default=4, ge=1, description="HTTP connections kept.")

    # --- balance checks (issue 3: app/balances) -----------------------------------------
    balance_source: str = Field(
        default="http", pattern=r"^(http|file:.+)$", description="'http' or 'file:PATH'."
    )
    balance_shards: int = Field(default=8, ge=1, le=1024, description="Shards per daily run.")
    balance_batch_size: int = Field(
        default=5000, ge=1, description="Customers fetched and written per transaction."
    )
    balance_kick_time: str = Field(
        default="22:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the daily kick, after end of business.",
    )
    balance_catchup_days: int = Field(
        default=7, ge=0, le=62, description="Earlier days the daily kick re-runs if unfinished."
    )
    balance_gap_repair_time: str = Field(
        default="05:15",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local HH:MM of the daily gap-repair kick.",
    )
    balance_max_stale_days: int = Field(
        default=3,
        ge=0,
        description="A source balance as of up to this many days before the check date is "
        "stored with a STALE_AS_OF flag (weekends); older is treated as missing.",
    )

    # --- qualification (issue 4: app/qualification) ------------------------------------
    qualification_kick_time: str = Field(
        default="06:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the monthly kick on the 1st. Not "
        "00:00-02:59: DST transitions skip or repeat those times (periodiq trap).",
    )
    qualification_kick_days: str = Field(
        default="1",
        pattern=r"^[0-9,\-]+$",
        description="Cron day-of-month field of the kick ('1', or '1-3' to retry).",
    )
    qualification_catchup_months: int = Field(
        default=3, ge=1, le=24, description="Closed months the kick looks back over."
    )
    qualification_phone_chunk: int = Field(
        default=5000, ge=100, description="Customers per phone re-validation chunk."
    )
    qualification_work_mem: str | None = Field(
        default="256MB",
        pattern=r"^\d+(kB|MB|GB)$",
        description="work_mem of the qualification transaction (keeps its aggregate in RAM).",
    )
