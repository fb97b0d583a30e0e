"""Where the system runs: PostgreSQL, Redis, the bank's calendar and threshold, observability.

One group of :class:`app.config.Settings`; the fields keep their environment names."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from app.config.base import PROJECT_ROOT


class PlatformSettings(BaseModel):
    # --- infrastructure -------------------------------------------------------------
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; unset means an embedded server."
    )
    redis_url: SecretStr | None = Field(
        default=None, description="Redis URL of the Dramatiq broker and rate limiters."
    )
    broker_signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key(s) signing broker messages, comma-separated, the first signs "
        "(secret; *_FILE accepted; required in production).",
    )
    embedded_pgdata: Path = Field(
        default=PROJECT_ROOT / ".data" / "pgdata",
        description="Data folder of the embedded PostgreSQL used when DATABASE_URL is unset.",
    )
    db_pool_size: int = Field(default=5, ge=1, description="Connections kept per process.")
    db_max_overflow: int = Field(
        default=5, ge=0, description="Extra connections a process may open at peak."
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
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Bind address of /metrics (compose sets 0.0.0.0 inside its network).",
    )
    metrics_port: int = Field(default=9191, ge=1, le=65535, description="Workers' /metrics port.")
    scheduler_metrics_port: int = Field(
        default=9192, ge=1, le=65535, description="The scheduler's /metrics port."
    )
