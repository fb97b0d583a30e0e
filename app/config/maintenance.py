"""Retention, cold storage, roles, stuck-row thresholds, backups and the erasure journal.

One group of :class:`app.config.Settings`; the fields keep their environment names."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

from app.config.base import PROJECT_ROOT


class MaintenanceSettings(BaseModel):
    # --- Operations (app/maintenance) --------------------------------------------------
    retention_kick_time: str = Field(
        default="04:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the daily retention kick. Israel's "
        "clocks change at 02:00 (02:00-02:59 is skipped in spring, 01:00-01:59 repeated in "
        "autumn), so 03:00 or later exists exactly once every day.",
    )
    # The lower bounds are the seed's periods, which the database itself enforces for the
    # partitioned tables (migration 0011's pn_retire_partition): a shorter value would
    # only make every run fail, so it fails at start instead.
    retention_hot_days: int = Field(
        default=365,
        ge=365,
        description="Checks, qualifications, notifications, deliveries (at least 365).",
    )
    retention_audit_hot_days: int = Field(
        default=730, ge=730, description="audit_log (at least 730)."
    )
    retention_system_events_days: int = Field(
        default=365,
        ge=365,
        description="system_events older than this are deleted (at least 365).",
    )
    retention_batch_size: int = Field(
        default=5000,
        ge=1,
        description="No longer used (issue 21: months leave whole); kept so that existing "
        "configurations stay valid.",
    )
    cold_storage_dir: Path = Field(
        default=PROJECT_ROOT / ".data" / "cold-storage",
        description="Local folder of the cold storage (Parquet files and manifests, "
        "age-encrypted to BACKUP_AGE_RECIPIENTS_FILE) when COLD_STORAGE_URL is not set.",
    )
    cold_storage_url: str | None = Field(
        default=None,
        pattern=r"^((s3|file|memory)://.+)?$",
        description="Object-store URL of the cold storage (s3://bucket/prefix); unset or "
        "empty = COLD_STORAGE_DIR. Written through fsspec (s3fs for s3://).",
    )
    cold_storage_s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint of an S3-compatible store (MinIO, Ceph); unset = AWS.",
    )
    cold_storage_s3_sse: str | None = Field(
        default="AES256",
        pattern=r"^(AES256|aws:kms)$",
        description="Server-side encryption asked for every object written to s3:// "
        "(AES256 or aws:kms); unset = the bucket's default encryption.",
    )
    cold_storage_years: int = Field(
        default=7, ge=1, description="Years a cold object is kept after its month (seed 9)."
    )
    cold_storage_audit_years: int = Field(
        default=10, ge=1, description="Years the audit log's cold objects are kept."
    )
    partitions_months_ahead: int = Field(
        default=2,
        ge=2,
        description="Months of partitions kept created ahead of the current one.",
    )
    partitions_kick_time: str = Field(
        default="04:15",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local (BANK_TIMEZONE) HH:MM of the daily kick that creates the "
        "partitions ahead (idempotent).",
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
        description="Prefix of the roles `db roles` manages (<prefix>_owner, _balances, ...).",
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
        description="age recipients (public keys) that logical exports, the erasure "
        "journal and a local cold storage folder are encrypted to. Outside production a key "
        "pair is made here when missing.",
    )
    backup_age_identity_file: Path = Field(
        default=PROJECT_ROOT / ".data" / "backup-keys" / "identity.txt",
        description="age identity (private key) that decrypts exports and the erasure "
        "journal (needed on restore only) and a local cold storage folder (needed by "
        "retention, GDPR and archive query).",
    )
    erasure_journal_dir: Path = Field(
        default=PROJECT_ROOT / ".data" / "erasure-journal",
        description="Folder of the GDPR erasure journal, kept outside the database and its "
        "backups; restores re-apply the erasures it holds.",
    )
