"""SQL of the database roles: the DDL/DCL that creates and grants them, and its execution.

Role, database and schema names are formatted into the statements (DDL takes no bound
parameters); they come from ``RoleNames`` (validated prefix) and the connection itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

OPERATIONAL_TABLES = (
    "customers",
    "daily_balance_checks",
    "monthly_qualifications",
    "notifications",
    "delivery_status",
    "system_events",
    "job_runs",
    "job_shards",
)
RECORD_FUNCTION = "public.audit_record(text, uuid, text, text, jsonb, uuid, text)"
MAINTENANCE_FUNCTIONS = (
    "public.audit_archive(uuid[])",
    "public.audit_retire(uuid[])",
    "public.audit_redact(text, uuid, jsonb, jsonb, jsonb)",
)
ARCHIVE_TABLES = (
    "daily_balance_checks_archive",
    "monthly_qualifications_archive",
    "notifications_archive",
    "delivery_status_archive",
    "audit_log_archive",
)


def grant_statements(
    worker: str, maintenance: str, reporting: str, database: str, schema: str = "public"
) -> list[str]:
    """The DDL/DCL for the three roles, in order. Every statement is safe to repeat."""
    ops = ", ".join(OPERATIONAL_TABLES)
    archives = ", ".join(ARCHIVE_TABLES)
    sql: list[str] = []
    for role in (worker, maintenance, reporting):
        sql.append(
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    w, m, r = worker, maintenance, reporting
    sql += [
        # Start from nothing on this schema's tables, so a re-run also revokes drift.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {w}, {m}, {r}",
        f'GRANT CONNECT ON DATABASE "{database}" TO {w}, {m}, {r}',
        f"GRANT USAGE ON SCHEMA {schema} TO {w}, {m}, {r}",
        # worker
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ops} TO {w}",
        # audit_log: read only; rows come from the triggers and audit_record() (0010).
        f"GRANT SELECT ON audit_log, audit_seals TO {w}",
        f"GRANT EXECUTE ON FUNCTION {RECORD_FUNCTION} TO {w}",
        f"GRANT SELECT ON {archives}, alembic_version TO {w}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {w}",
        # The qualification run decides into a transaction-local table (even where a
        # hardened database has revoked TEMPORARY from PUBLIC).
        f'GRANT TEMPORARY ON DATABASE "{database}" TO {w}',
        # maintenance = worker + archives (no DELETE: append-only) + the audit writer's
        # archival and redaction functions
        f"GRANT {w} TO {m}",
        f"GRANT SELECT, INSERT, UPDATE ON {archives} TO {m}",
        f"REVOKE INSERT, UPDATE ON audit_log_archive FROM {m}",
        *(f"GRANT EXECUTE ON FUNCTION {f} TO {m}" for f in MAINTENANCE_FUNCTIONS),
        # reporting: read only, even if someone grants it more later
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {r}",
        f"ALTER ROLE {r} SET default_transaction_read_only = on",
        # tables the migration owner creates later
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {r}",
    ]
    return sql


def current_database(session: Session) -> str:
    """The name of the database the session is connected to."""
    return str(session.scalar(text("SELECT current_database()")))


def execute_all(session: Session, statements: Iterable[str]) -> None:
    """Run the statements, in order, in the caller's transaction."""
    for statement in statements:
        session.execute(text(statement))


def table_owner(session: Session) -> str:
    """The role that owns alembic_version (the migration owner)."""
    return str(
        session.scalar(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version' LIMIT 1")
        )
    )


def drop_role(session: Session, role: str) -> None:
    """Drop the role and whatever it owns or was granted in this database, if it exists."""
    exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists:
        session.execute(text(f"DROP OWNED BY {role}"))
        session.execute(text(f"DROP ROLE {role}"))
