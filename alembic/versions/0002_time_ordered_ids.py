"""Time-ordered ids for the tables written in bulk, and a cheaper audit trigger.

* ``uuid_generate_v7()`` becomes the id default of the bulk-written tables
  (``app.db.audit_ddl.TIME_ORDERED_ID_TABLES``): their primary keys and
  ``idx_audit_entity`` then grow at the right edge instead of on a random leaf per row.
  Existing ids are kept; customers keep random ids. A departure from the seed's
  ``DEFAULT gen_random_uuid()`` (docs/decisions.md).
* ``audit_statement()`` builds each row's JSON once (same rows, same values).

Measured with ``./scripts/bench qualification`` (docs/qualification.md).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 22:50:00
"""

from collections.abc import Sequence

from alembic import op
from app.db.audit_ddl import (
    AUDIT_FUNCTION,
    AUDIT_FUNCTION_V2,
    TIME_ORDERED_ID_TABLES,
    UUID_V7_FUNCTION,
)

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(UUID_V7_FUNCTION)
    for table in TIME_ORDERED_ID_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT uuid_generate_v7()")
    op.execute(AUDIT_FUNCTION_V2)


def downgrade() -> None:
    op.execute(AUDIT_FUNCTION)
    for table in TIME_ORDERED_ID_TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN id SET DEFAULT gen_random_uuid()")
    op.execute("DROP FUNCTION IF EXISTS uuid_generate_v7()")
