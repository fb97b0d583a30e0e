"""SQL for the audit triggers used by the migrations.

Migration 0001 imports these: never change a constant that a released migration used;
add a new one for a new migration instead.

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
