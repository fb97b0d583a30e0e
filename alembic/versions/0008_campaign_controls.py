"""Campaign controls (issue 20): opt-outs, the SMS kill switch, the carrier's cost.

* ``customer_opt_outs``: every opt-out / opt-in of a customer (21610 from the carrier,
  STOP / START keywords texted to us), append-only: a trigger refuses UPDATE and DELETE
  unless the transaction is a privileged maintenance one (``SET LOCAL
  app.audit_maintenance = 'on'``, as for callback_receipts); the audit trigger logs each
  insert. Keyed by customer: phone numbers change.
* ``sms_controls``: the kill switch (one row per switch name), audited on insert and
  update.
* ``notifications.carrier_segments``, ``price``, ``price_unit``: what the carrier reports a
  message cost (also on ``notifications_archive`` where that table exists, so archived
  rows keep them).

Self-contained: nothing is imported from app/.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = """
CREATE OR REPLACE FUNCTION customer_opt_outs_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF coalesce(current_setting('app.audit_maintenance', true), '') = 'on' THEN
        RETURN COALESCE(OLD, NEW);
    END IF;
    RAISE EXCEPTION 'customer_opt_outs is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""

# audit_statement() (0001, 0002) arguments: entity_type, service_name, excluded columns.
TRIGGERS = (
    "CREATE TRIGGER customer_opt_outs_no_update_delete BEFORE UPDATE OR DELETE "
    "ON customer_opt_outs FOR EACH ROW EXECUTE FUNCTION customer_opt_outs_append_only()",
    "CREATE TRIGGER customer_opt_outs_audit_insert AFTER INSERT ON customer_opt_outs "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "audit_statement('CustomerOptOut', 'CampaignControls', '{}')",
    "CREATE TRIGGER sms_controls_audit_insert AFTER INSERT ON sms_controls "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "
    "audit_statement('SmsControl', 'CampaignControls', '{}')",
    "CREATE TRIGGER sms_controls_audit_update AFTER UPDATE ON sms_controls "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION audit_statement('SmsControl', 'CampaignControls', '{}')",
)

COST_COLUMNS = (
    ("carrier_segments", "integer"),
    ("price", "numeric(12, 5)"),
    ("price_unit", "varchar(8)"),
)


def _cost_tables() -> list[str]:
    exists = op.get_bind().scalar(sa.text("SELECT to_regclass('notifications_archive')"))
    return ["notifications", *(["notifications_archive"] if exists else [])]


def upgrade() -> None:
    op.create_table(
        "customer_opt_outs",
        sa.Column("id", sa.UUID(), server_default=sa.text("uuid_generate_v7()"), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=30), nullable=False),
        sa.Column("keyword", sa.String(length=20), nullable=True),
        sa.Column("notification_id", sa.UUID(), nullable=True),
        sa.Column("message_sid", sa.String(length=64), nullable=True),
        sa.Column(
            "recorded_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),  # fmt: skip
        sa.Column("correlation_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("customer_opt_outs_customer_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("customer_opt_outs_pkey")),
    )
    op.create_index(
        "idx_customer_opt_outs_customer", "customer_opt_outs", ["customer_id", "recorded_at"]
    )
    op.create_index("idx_customer_opt_outs_recorded", "customer_opt_outs", ["recorded_at"])
    op.create_table(
        "sms_controls",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=255), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=True),
        sa.Column(
            "changed_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),  # fmt: skip
        sa.Column("correlation_id", sa.UUID(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("sms_controls_pkey")),
        sa.UniqueConstraint("name", name=op.f("sms_controls_name_key")),
    )
    for table in _cost_tables():
        for column, kind in COST_COLUMNS:
            op.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    op.execute(APPEND_ONLY)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for table in _cost_tables():
        for column, _ in COST_COLUMNS:
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {column}")
    op.drop_table("sms_controls")  # drops its triggers too
    op.drop_table("customer_opt_outs")
    op.execute("DROP FUNCTION IF EXISTS customer_opt_outs_append_only()")
