"""One typed settings object for every process (CLI, workers, scheduler, tests).

Values come from the environment (and an optional ``.env`` file). Every secret may
instead be given as ``<NAME>_FILE`` pointing at a file that holds it (the Docker
secrets convention); secrets are ``SecretStr`` so they never show in a repr, a log line
or a validation error.

The fields live in four groups (one module each, by the stages they serve):
``platform`` (databases, calendar, observability), ``intake`` (balance checks and the
qualification), ``messaging`` (carrier, send, campaign, callbacks, delivery) and
``maintenance`` (retention, roles, backups). This module composes them and holds the
validators that span groups.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app import config_checks
from app.config.base import PROJECT_ROOT, SECRET_FILE_SETTINGS, ConfigError, read_secret_files
from app.config.intake import IntakeSettings
from app.config.maintenance import MaintenanceSettings
from app.config.messaging import MessagingSettings
from app.config.platform import PlatformSettings

__all__ = ["PROJECT_ROOT", "SECRET_FILE_SETTINGS", "ConfigError", "Settings", "get_settings"]


class Settings(
    MaintenanceSettings, MessagingSettings, IntakeSettings, PlatformSettings, BaseSettings
):
    """Configuration of the Premium Customer Notification System."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_files(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return read_secret_files(dict(data))
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
