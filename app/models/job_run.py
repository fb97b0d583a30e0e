from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, uuid_pk


class JobRun(Base):
    """Bookkeeping of one run of a pipeline stage (not in the seed).

    ``job`` names the stage (balance_checks, gap_repair, qualification, notifications,
    delivery_poll, retention, ...); ``run_key`` what it ran for (a date, a month).
    Sharded stages fan in through ``job_shards``: the last shard to finish sets
    ``finished_at`` exactly once (``UPDATE ... WHERE finished_at IS NULL``).
    """

    __tablename__ = "job_runs"

    id: Mapped[uuid.UUID] = uuid_pk()
    job: Mapped[str] = mapped_column(String(50), nullable=False)
    run_key: Mapped[str] = mapped_column(String(50), nullable=False)
    correlation_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")
    )
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=text("'Running'")
    )
    shard_count: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("1"))
    triggered_by: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(
        nullable=False, server_default=text("CURRENT_TIMESTAMP")
    )
    finished_at: Mapped[datetime | None] = mapped_column()
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    error: Mapped[str | None] = mapped_column(Text)
    # The run's lease (app/db/leases.py): renewed while it works; a Running run whose
    # lease expired is stale (its process died) and the next run takes it over.
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    lease_expires_at: Mapped[datetime | None] = mapped_column()
    lease_owner: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (
        Index("idx_job_runs_job_key", "job", "run_key"),
        Index("idx_job_runs_started", text("started_at DESC")),
        Index(
            "idx_job_runs_running",
            "job",
            "lease_expires_at",
            postgresql_where=text("status = 'Running'"),
        ),
    )


class JobShard(Base):
    """One shard of a sharded run; idempotent per (run_id, shard)."""

    __tablename__ = "job_shards"

    run_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("job_runs.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(
        String(20), nullable=False, server_default=text("'Pending'")
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default=text("0"))
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
