"""One typed settings object for every process (CLI, workers, scheduler, tests).

Values come from the environment (and an optional ``.env`` file). Every secret may
instead be given as ``<NAME>_FILE`` pointing at a file that holds it (the Docker
secrets convention); secrets are ``SecretStr`` so they never show in a repr, a log line
or a validation error.
"""

from __future__ import annotations

import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import config_checks

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Settings that may be supplied as <NAME>_FILE (Docker secrets). DATABASE_URL and
# REDIS_URL are included because they usually carry a password.
SECRET_FILE_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "SENTRY_DSN",
    "CORE_BANKING_API_TOKEN",
    "BACKUP_CIPHER_PASS",
)


class ConfigError(ValueError):
    """A setting is missing or malformed. The message never contains a secret."""


def _read_secret_files(values: dict[str, Any]) -> dict[str, Any]:
    for name in SECRET_FILE_SETTINGS:
        file_var = f"{name}_FILE"
        path = values.pop(file_var.lower(), None) or os.environ.get(file_var)
        if not path or values.get(name.lower()):
            continue
        try:
            values[name.lower()] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # Name the variable and the path, never the contents.
            raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
    return values


class Settings(BaseSettings):
    """Configuration of the Premium Customer Notification System."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    # --- infrastructure -------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset means an embedded server."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL of the Dramatiq broker and rate limiters."
    )
    embedded_pgdata: Path = Field(
        default=PROJECT_ROOT / ".data" / "pgdata",
        description="Data folder of the embedded PostgreSQL used when DATABASE_URL is unset.",
    )
    db_pool_size: int = Field(default=5, ge=1, description="Connections kept per process.")
    db_max_overflow: int = Field(
        default=5, ge=0, description="Extra connections a process may open at peak."
    )

    # --- carrier (Twilio) -------------------------------------------------------------
    twilio_account_sid: SecretStr | None = Field(
        default=None, description="Carrier account (secret; *_FILE accepted)."
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, description="Carrier token (secret; *_FILE accepted)."
    )
    twilio_from: str | None = Field(default=None, description="Sender number or alphanumeric id.")
    twilio_messaging_service_sid: str | None = Field(
        default=None, description="Sender pool; used instead of TWILIO_FROM when set."
    )
    twilio_base_url: str | None = Field(
        default=None, description="Twilio-compatible server to call instead of api.twilio.com."
    )
    twilio_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="HTTP timeout of every carrier call (the SDK has none by default).",
    )

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

    # --- business -----------------------------------------------------------------
    bank_timezone: str = Field(
        default="Asia/Jerusalem", description="Business calendar, schedules and send window."
    )
    qualification_threshold: Decimal = Field(
        default=Decimal("15000.00"),
        ge=0,
        description="NIS; balance >= threshold passes (two decimals at most).",
    )
    default_phone_region: str = Field(
        default="IL", description="Region used to read national phone numbers (050-...)."
    )

    # --- SMS (app/notifications) ------------------------------------------------------
    sms_mps: float = Field(
        default=30.0, ge=0, description="Carrier limit in message segments per second; 0 = none."
    )
    sms_rate_window_margin_seconds: float = Field(
        default=0.04,
        ge=0,
        lt=1,
        description="The limiter counts over 1 s + this margin so network jitter between "
        "worker and carrier cannot push a carrier-side one-second window over the limit.",
    )
    sms_send_window: str = Field(
        default="sun-thu 09:00-20:00; fri 09:00-13:00",
        description="Local (BANK_TIMEZONE) send window; days mon..sun, ';' between rules.",
    )
    sms_template_language: str = Field(default="he", description="Template used: he or en.")
    sms_template_he: str | None = Field(default=None, description="Overrides the Hebrew text.")
    sms_template_en: str | None = Field(default=None, description="Overrides the English text.")
    sms_max_segments: int = Field(
        default=3,
        ge=1,
        le=10,
        description="A rendered message longer than this is refused before sending.",
    )
    sms_batch_size: int = Field(default=100, ge=1, description="Outbox rows per send batch.")
    sms_claim_chunk: int = Field(
        default=50,
        ge=1,
        description="Rows claimed (Queued -> Sending) per transaction; outcomes are recorded "
        "per chunk too (a crash leaves at most this many rows for the reconciler).",
    )
    sms_max_transient_retries: int = Field(
        default=8, ge=0, description="Transient carrier errors (429, 21611) tolerated per message."
    )
    sms_batch_time_budget_seconds: float = Field(
        default=120.0, gt=0, description="A send batch re-enqueues itself after this long."
    )
    sms_reconcile_queued_after_seconds: float = Field(
        default=900.0, ge=0, description="Queued rows untouched this long are re-enqueued."
    )
    sms_reconcile_sending_after_seconds: float = Field(
        default=300.0,
        ge=0,
        description="Rows in Sending this long are looked up at the carrier (found -> "
        "Submitted). Keep it well above TWILIO_TIMEOUT_SECONDS.",
    )
    sms_reconcile_list_lag_margin_seconds: float = Field(
        default=900.0,
        ge=0,
        description="A Sending row no callback and no lookup found goes back to Queued only "
        "this long after its ValidityPeriod ran out (docs/sms.md): at least the carrier's "
        "list lag.",
    )
    sms_status_callback_url: str | None = Field(
        default=None,
        description="StatusCallback of every create when CALLBACK_PUBLIC_URL is unset (with "
        "it, each create carries its notification's own URL).",
    )
    sms_validity_period_seconds: int = Field(
        default=3600,
        ge=1,
        le=36000,
        description="ValidityPeriod of every create: the carrier drops a message still in "
        "its queue after this long (Twilio: 1-36000).",
    )

    # --- campaign controls (issue 20: app/campaign, docs/campaign.md) -----------------------
    sms_pause_check_seconds: float = Field(
        default=2.0, ge=0, le=30, description="Senders re-read the kill switch (sms pause) "
        "from the database at most this long after their last read.",
    )  # fmt: skip
    sms_paused_recheck_seconds: float = Field(
        default=15.0, gt=0, description="While sending is paused, a send batch re-enqueues "
        "itself after this long (its rows stay Queued).",
    )  # fmt: skip
    sms_breaker_window_seconds: float = Field(
        default=300.0, gt=0, description="The circuit breaker judges each sender's carrier "
        "answers of this many past seconds.",
    )  # fmt: skip
    sms_breaker_min_attempts: int = Field(
        default=20, ge=0, description="Carrier answers a window needs before the breaker may "
        "pause sending; 0 = no automatic pause.",
    )  # fmt: skip
    sms_breaker_failure_rate: float = Field(
        default=0.5, gt=0, le=1, description="Pause sending when at least this share of a "
        "window's answers are permanent refusals (21610, an opt-out, excluded).",
    )  # fmt: skip
    sms_breaker_error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Pause sending when at least this share of a "
        "window's answers are errors of any kind (429, 5xx, timeouts too); 0 = off (backoff "
        "handles an outage).",
    )  # fmt: skip

    # --- status callbacks (issue 19: app/callbacks) -----------------------------------
    callback_public_url: str | None = Field(
        default=None,
        description="Public base URL of the callback receiver as the carrier calls it (the "
        "bank's proxy); signatures are checked against it, callback URLs start with it.",
    )  # fmt: skip
    callback_max_body_bytes: int = Field(
        default=16384, ge=1024, description="Larger callback requests are refused (413)."
    )
    callback_rate_per_second: float = Field(
        default=200.0, ge=0, description="Callback requests per second one receiver process "
        "accepts (bursts of twice that); more: 429. 0 = no limit.",
    )  # fmt: skip

    # --- delivery tracking (issue 6: app/delivery) ------------------------------------
    delivery_poll_cron: str = Field(
        default="*/3 * * * *", description="periodiq cron of the delivery-poll kick."
    )
    delivery_backoff_minutes: str = Field(
        default="1,2,5,10,30,60",
        pattern=r"^\d+(,\d+)*$",
        description="Minutes before poll N+1 of a message (by its attempts so far); "
        "the last value repeats.",
    )
    delivery_deadline_hours: float = Field(
        default=72.0, gt=0, description="Not final after this long: final 'Unknown' status."
    )
    delivery_lookback_days: int = Field(
        default=14, ge=1, description="Submitted messages older than this are not polled."
    )
    delivery_page_size: int = Field(
        default=1000, ge=1, le=1000, description="Messages per carrier list page (max 1000)."
    )
    delivery_carrier_rps: float = Field(
        default=25.0,
        ge=0,
        description="Carrier read calls (list pages + fetches) per second "
        "across all workers; 0 = no limit. Separate from SMS_MPS (sends).",
    )
    delivery_fetch_cap: int = Field(
        default=2000, ge=0, description="Per-message fetches per day batch and poll round."
    )

    # --- observability --------------------------------------------------------------
    sentry_dsn: SecretStr | None = Field(
        default=None,
        description="Error reporting; unset disables Sentry (secret; *_FILE accepted).",
    )
    environment: str = Field(
        default="development", description="Deployment name (Sentry environment)."
    )
    log_level: str = Field(default="INFO", description="Root log level.")
    log_format: str = Field(
        default="json", pattern="^(json|text)$", description="json (workers, scheduler) or text."
    )
    sentry_release: str | None = Field(default=None, description="Defaults to the package version.")
    sentry_traces_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="Sentry performance tracing sample rate."
    )
    metrics_host: str = Field(default="0.0.0.0", description="Bind address of /metrics.")
    metrics_port: int = Field(default=9191, ge=1, le=65535, description="Workers' /metrics port.")
    scheduler_metrics_port: int = Field(
        default=9192, ge=1, le=65535, description="The scheduler's /metrics port."
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

    # --- Operations (app/maintenance) --------------------------------------------------
    retention_kick_time: str = Field(
        default="04:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the daily retention kick. Israel's "
        "clocks change at 02:00 (02:00-02:59 is skipped in spring, 01:00-01:59 repeated in "
        "autumn), so 03:00 or later exists exactly once every day.",
    )
    retention_hot_days: int = Field(
        default=365, ge=1, description="Checks, qualifications, notifications, deliveries."
    )
    retention_audit_hot_days: int = Field(default=730, ge=1, description="audit_log.")
    retention_system_events_days: int = Field(
        default=365, ge=1, description="system_events older than this are deleted."
    )
    retention_batch_size: int = Field(
        default=5000, ge=1, description="Rows moved per transaction (insert + delete)."
    )
    cold_storage_dir: Path = Field(
        default=PROJECT_ROOT / ".data" / "cold-storage",
        description="Folder (a mounted bucket or NFS share) of the archive CSV.gz exports.",
    )
    ops_stuck_queued_minutes: int = Field(
        default=60, ge=1, description="status: Queued notifications older than this are stuck."
    )
    ops_stuck_sending_minutes: int = Field(
        default=15, ge=1, description="status: Sending rows claimed longer ago are stuck."
    )
    db_role_prefix: str = Field(
        default="pn",
        pattern=r"^[a-z][a-z0-9_]{0,40}$",
        description="Prefix of the database roles `db roles` manages (<prefix>_worker, ...).",
    )
    backup_dir: Path = Field(
        default=PROJECT_ROOT / ".data" / "backups",
        description="Folder of the logical exports (db export; encrypted pg_dump).",
    )
    backup_metrics_file: Path | None = Field(
        default=None,
        description="Prometheus textfile-collector file of the backup service "
        "(default: <BACKUP_DIR>/pn_backup.prom); exports write <name>_export.prom beside it.",
    )
    backup_stanza: str = Field(
        default="premium",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="pgBackRest stanza of the cluster (docker/pgbackrest/pgbackrest.conf).",
    )
    backup_pgbackrest_config: Path | None = Field(
        default=None,
        description="pgBackRest configuration file (default: pgBackRest's own, "
        "/etc/pgbackrest/pgbackrest.conf).",
    )
    backup_cipher_pass: SecretStr | None = Field(
        default=None,
        description="Passphrase of the encrypted pgBackRest repositories, passed to pgBackRest "
        "as PGBACKREST_REPOn_CIPHER_PASS (secret; *_FILE accepted).",
    )
    backup_time: str = Field(
        default="03:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the daily physical backup; a backup "
        "missed while the service was down is taken as soon as it is back.",
    )
    backup_full_weekday: str = Field(
        default="sun",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun)$",
        description="Day of the weekly full backup; the other days take a differential "
        "(a missed full is taken by the next backup).",
    )
    backup_monthly_repo: int = Field(
        default=0,
        ge=0,
        le=4,
        description="pgBackRest repository (e.g. 2, offsite) that gets a full backup in the "
        "first backup of each month and keeps it a year; 0 = none.",
    )
    backup_export_weekday: str | None = Field(
        default="sun",
        pattern=r"^(mon|tue|wed|thu|fri|sat|sun)$",
        description="Day the backup service also writes the secondary, encrypted logical "
        "export (pg_dump); unset = never.",
    )
    backup_age_recipients_file: Path = Field(
        default=PROJECT_ROOT / ".data" / "backup-keys" / "recipients.txt",
        description="age recipients (public keys) that logical exports and the erasure "
        "journal are encrypted to. Outside production a key pair is made here when missing.",
    )
    backup_age_identity_file: Path = Field(
        default=PROJECT_ROOT / ".data" / "backup-keys" / "identity.txt",
        description="age identity (private key) that decrypts exports and the erasure "
        "journal; needed on restore only.",
    )
    erasure_journal_dir: Path = Field(
        default=PROJECT_ROOT / ".data" / "erasure-journal",
        description="Folder of the GDPR erasure journal, kept outside the database and its "
        "backups; restores re-apply the erasures it holds.",
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return _read_secret_files(dict(data))
        return data

    @field_validator("bank_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator(*config_checks.FIELD_CHECKS)
    @classmethod
    def _checked(cls, value: Any, info: ValidationInfo) -> Any:
        # Kick times, cron specs, the send window, URLs...: app/config_checks.py says why.
        return config_checks.FIELD_CHECKS[info.field_name or ""](value)

    @model_validator(mode="after")
    def _checked_together(self) -> Settings:
        config_checks.check_settings(self)
        return self

    @field_validator("qualification_threshold")
    @classmethod
    def _two_decimals(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("the threshold has at most two decimals")
        return value.quantize(Decimal("0.01"))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.bank_timezone)

    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    def is_production(self) -> bool:
        return self.environment == "production"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call ``get_settings.cache_clear()``)."""
    return Settings()
