"""SQL for the audit triggers used by the migrations.

The migrations import these: never change a constant that a released migration used;
add a new one for a new migration instead (0001 used AUDIT_FUNCTION; 0002 replaced it
with AUDIT_FUNCTION_V2 and added UUID_V7_FUNCTION).

* ``audit_statement()`` is one statement-level trigger function (transition tables,
  DESIGN.md decision 6): one audit_log row per affected row, without a per-row trigger
  call. Arguments: entity_type, service_name, and the columns to leave out of the JSON
  (personal data stays out of the log: decision 7). For UPDATE it writes a row only
  for rows whose audited columns really changed, with old_values and new_values.
  The correlation id is the row's own, else the transaction's ``app.correlation_id``;
  ``app.user_id`` names the operator when a person started the change.
* ``audit_log_append_only()`` refuses UPDATE, DELETE and TRUNCATE on audit_log unless
  the transaction declared itself a privileged maintenance operation
  (``SET LOCAL app.audit_maintenance = 'on'``: retention archival, GDPR anonymisation),
  which are themselves audited by the code that does them.
"""

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

# Migration 0002: the same contract, each row's JSON built once (a fenced subquery:
# OFFSET 0 keeps the planner from inlining it and rebuilding to_jsonb per reference).
# For UPDATE that is 2 to_jsonb calls per row instead of 6.
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

# Migration 0002: time-ordered ids (RFC 9562 UUIDv7: 48-bit Unix milliseconds, version
# 7, variant 10, 74 random bits) for the tables written in bulk. A random v4 id puts
# every insert on a random leaf of the primary key (and of idx_audit_entity, keyed by
# the audited row's id): once those indexes outgrow shared_buffers, each insert reads
# and dirties a page, with a full-page image in the WAL after each checkpoint. v7 ids
# append to the right edge. PostgreSQL 18 has uuidv7() built in; 15 needs this.
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

# Tables whose ids are uuid_generate_v7() from 0002 on. customers keeps random ids:
# balance-check shards are ranges of the customer id's leading bits (app.balances), and
# a customer id should not reveal when the customer was created.
TIME_ORDERED_ID_TABLES: tuple[str, ...] = (
    "daily_balance_checks",
    "monthly_qualifications",
    "notifications",
    "delivery_status",
    "audit_log",
    "system_events",
)

APPEND_ONLY_FUNCTION = r"""
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.audit_maintenance', true) = 'on' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

APPEND_ONLY_TRIGGERS = """
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


def statement_audit_triggers(
    table: str, entity_type: str, service_name: str, excluded: tuple[str, ...] = ()
) -> list[str]:
    """CREATE TRIGGER statements (one per event: transition tables allow one event each)."""
    args = f"'{entity_type}', '{service_name}', '{{{','.join(excluded)}}}'"
    return [
        f"CREATE TRIGGER {table}_audit_insert AFTER INSERT ON {table} "
        f"REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_statement({args})",
        f"CREATE TRIGGER {table}_audit_update AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION audit_statement({args})",
    ]


def drop_statement_audit_triggers(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_audit_insert ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_audit_update ON {table}",
    ]


# (table, entity_type, service_name, columns kept out of the audit JSON)
AUDITED_TABLES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("daily_balance_checks", "BalanceCheck", "BalanceMonitor", ()),
    ("monthly_qualifications", "Qualification", "QualificationEngine", ()),
    ("notifications", "Notification", "NotificationService", ("phone_number", "sms_content")),
)
