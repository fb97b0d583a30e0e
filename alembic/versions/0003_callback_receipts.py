"""callback_receipts: every signed carrier callback as it came in (issue 19), append-only.

The receiver (``premium-notify serve callbacks``, app/callbacks) stores each status or
inbound-message callback here before applying it. Rows are never changed: a trigger
refuses UPDATE and DELETE unless the transaction is a privileged maintenance one
(``SET LOCAL app.audit_maintenance = 'on'``, as for audit_log), so retention can still
remove old receipts. Self-contained: nothing is imported from app/.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION callback_receipts_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF coalesce(current_setting('app.audit_maintenance', true), '') = 'on' THEN
        RETURN COALESCE(OLD, NEW);
    END IF;
    RAISE EXCEPTION 'callback_receipts is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "callback_receipts",
        sa.Column("id", sa.UUID(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("notification_id", sa.UUID(), nullable=True),
        sa.Column("message_sid", sa.String(length=64), nullable=True),
        sa.Column("message_status", sa.String(length=50), nullable=True),
        sa.Column("error_code", sa.String(length=50), nullable=True),
        sa.Column("num_segments", sa.Integer(), nullable=True),
        sa.Column("price", sa.String(length=32), nullable=True),
        sa.Column("price_unit", sa.String(length=8), nullable=True),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("keyword", sa.String(length=20), nullable=True),
        sa.Column("outcome", sa.String(length=30), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("callback_receipts_pkey")),
    )
    op.create_index(
        "idx_callback_receipts_notification",
        "callback_receipts",
        ["notification_id", "received_at"],
        unique=False,
    )
    op.create_index("idx_callback_receipts_sid", "callback_receipts", ["message_sid"])
    op.create_index("idx_callback_receipts_received", "callback_receipts", ["received_at"])
    op.execute(APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER callback_receipts_no_update_delete BEFORE UPDATE OR DELETE "
        "ON callback_receipts FOR EACH ROW EXECUTE FUNCTION callback_receipts_append_only()"
    )


def downgrade() -> None:
    op.drop_table("callback_receipts")  # drops its trigger too
    op.execute("DROP FUNCTION IF EXISTS callback_receipts_append_only()")
