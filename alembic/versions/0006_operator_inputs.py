"""Contact fields kept as given, and run leases.

* ``customers.phone_raw`` / ``email_raw``: a phone number or email address that is not
  valid is kept as the file gave it, so an operator can see and correct it;
  ``phone_number`` holds only valid E.164 (seed 7.3) and ``email`` only a valid address.
  The customer is imported all the same (and disqualified with INVALID_PHONE).
* ``job_runs.heartbeat_at`` / ``lease_expires_at`` / ``lease_owner``: a running job renews
  its lease while it works; a Running run whose lease expired belongs to a process that
  died: ``status`` shows it as stale and the next run of the job takes it over.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("phone_raw", sa.String(length=50), nullable=True))
    op.add_column("customers", sa.Column("email_raw", sa.String(length=255), nullable=True))
    op.add_column("job_runs", sa.Column("heartbeat_at", sa.DateTime(), nullable=True))
    op.add_column("job_runs", sa.Column("lease_expires_at", sa.DateTime(), nullable=True))
    op.add_column("job_runs", sa.Column("lease_owner", sa.String(length=100), nullable=True))
    # Running runs only: the takeover and `status` look them up by job.
    op.create_index(
        "idx_job_runs_running",
        "job_runs",
        ["job", "lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'Running'"),
    )


def downgrade() -> None:
    op.drop_index(
        "idx_job_runs_running",
        table_name="job_runs",
        postgresql_where=sa.text("status = 'Running'"),
    )
    op.drop_column("job_runs", "lease_owner")
    op.drop_column("job_runs", "lease_expires_at")
    op.drop_column("job_runs", "heartbeat_at")
    op.drop_column("customers", "email_raw")
    op.drop_column("customers", "phone_raw")
