"""Time-ordered ids for the tables written in bulk, and a cheaper audit trigger.

* ``uuid_generate_v7()`` becomes the id default of the bulk-written tables
  (``TIME_ORDERED_ID_TABLES`` below): their primary keys and
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

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# This file carries the DDL it ran, so that editing live code can never change a released
# migration.

# Time-ordered ids (RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, 74
# random bits) for the tables written in bulk. A random v4 id puts every insert on a random
# leaf of the primary key (and of idx_audit_entity, keyed by the audited row's id): once
# those indexes outgrow shared_buffers, each insert reads and dirties a page, with a
# full-page image in the WAL after each checkpoint. v7 ids append to the right edge.
# PostgreSQL 18 has uuidv7() built in; 15 needs this.
UUID_V7_FUNCTION = r"""
CREATE OR REPLACE FUNCTION uuid_generate_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid()) PLACING
                    substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                              FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
"""

# customers keeps random ids: balance-check shards are ranges of the customer id's leading
# bits (app.balances), and a customer id should not reveal when the customer was created.
TIME_ORDERED_ID_TABLES: tuple[str, ...] = (
    "daily_balance_checks",
    "monthly_qualifications",
    "notifications",
    "delivery_status",
    "audit_log",
    "system_events",
)

# The same contract as 0001's audit_statement(), each row's JSON built once (a fenced
# subquery: OFFSET 0 keeps the planner from inlining it and rebuilding to_jsonb per
# reference). For UPDATE that is 2 to_jsonb calls per row instead of 6.
AUDIT_FUNCTION_V2 = r"""
CREATE OR REPLACE FUNCTION audit_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    excluded text[] := COALESCE(NULLIF(TG_ARGV[2], '')::text[], '{}'::text[]);
    tx_correlation uuid := NULLIF(current_setting('app.correlation_id', true), '')::uuid;
    tx_user text := NULLIF(current_setting('app.user_id', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (entity_type, entity_id, operation, new_values,
                               correlation_id, user_id, service_name, timestamp)
        SELECT TG_ARGV[0], (j.doc ->> 'id')::uuid, TG_OP, j.doc - excluded,
               COALESCE((j.doc ->> 'correlation_id')::uuid, tx_correlation),
               tx_user, TG_ARGV[1], CURRENT_TIMESTAMP
        FROM (SELECT to_jsonb(n) AS doc FROM new_rows n OFFSET 0) j;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO audit_log (entity_type, entity_id, operation, old_values, new_values,
                               correlation_id, user_id, service_name, timestamp)
        SELECT TG_ARGV[0], j.id, TG_OP, j.old_doc, j.new_doc,
               COALESCE(tx_correlation, (j.new_doc ->> 'correlation_id')::uuid),
               tx_user, TG_ARGV[1], CURRENT_TIMESTAMP
        FROM (SELECT n.id, to_jsonb(o) - excluded AS old_doc, to_jsonb(n) - excluded AS new_doc
              FROM new_rows n JOIN old_rows o ON o.id = n.id OFFSET 0) j
        WHERE (j.new_doc - 'updated_at') IS DISTINCT FROM (j.old_doc - 'updated_at');
    END IF;
    RETURN NULL;
END;
$$;
"""

# 0001's audit_statement(), restored by the downgrade (a copy of 0001's AUDIT_FUNCTION).
AUDIT_FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_statement() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    excluded text[] := COALESCE(NULLIF(TG_ARGV[2], '')::text[], '{}'::text[]);
    tx_correlation uuid := NULLIF(current_setting('app.correlation_id', true), '')::uuid;
    tx_user text := NULLIF(current_setting('app.user_id', true), '');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_log (entity_type, entity_id, operation, new_values,
                               correlation_id, user_id, service_name, timestamp)
        SELECT TG_ARGV[0], n.id, TG_OP, to_jsonb(n) - excluded,
               COALESCE((to_jsonb(n) ->> 'correlation_id')::uuid, tx_correlation),
               tx_user, TG_ARGV[1], CURRENT_TIMESTAMP
        FROM new_rows n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO audit_log (entity_type, entity_id, operation, old_values, new_values,
                               correlation_id, user_id, service_name, timestamp)
        SELECT TG_ARGV[0], n.id, TG_OP, to_jsonb(o) - excluded, to_jsonb(n) - excluded,
               COALESCE(tx_correlation, (to_jsonb(n) ->> 'correlation_id')::uuid),
               tx_user, TG_ARGV[1], CURRENT_TIMESTAMP
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (to_jsonb(n) - excluded - 'updated_at') IS DISTINCT FROM
              (to_jsonb(o) - excluded - 'updated_at');
    END IF;
    RETURN NULL;
END;
$$;
"""


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
