"""Database roles: least privilege for workers and reports, a privileged maintenance role.

A migration is not allowed this round, so ``premium-notify db roles`` applies this
(idempotently; run it after every ``db upgrade``, as the migration owner):

* ``<prefix>_worker``: DML on the operational tables, SELECT + INSERT only on audit_log
  (the audit triggers run as the invoking role, so INSERT is what they need), SELECT on
  the archives. It cannot change or delete an audit row.
* ``<prefix>_maintenance``: the worker's rights plus archive DML, DELETE/UPDATE on
  audit_log: retention archival and GDPR anonymisation. Only members of this role (or
  superusers) may use the append-only trigger's bypass (``app.audit_maintenance``):
  the trigger function is replaced here to check that membership too.
* ``<prefix>_reporting``: SELECT on everything, default_transaction_read_only on.
* The migration owner is the role that runs ``alembic upgrade`` and owns the tables
  (whoever runs this command, normally); default privileges make the tables it creates
  later readable by reporting and writable by maintenance; re-run after a migration to
  grant the worker its rights on new tables (the worker's list is explicit on purpose).

The roles are NOLOGIN groups: operators create login users and GRANT the group to them
(``CREATE ROLE app_worker LOGIN PASSWORD ... IN ROLE pn_worker``). Roles are cluster
wide; the prefix (DB_ROLE_PREFIX) keeps environments (and parallel tests) apart.
"""

from __future__ import annotations

from dataclasses import dataclass

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
ARCHIVE_TABLES = (
    "daily_balance_checks_archive",
    "monthly_qualifications_archive",
    "notifications_archive",
    "delivery_status_archive",
    "audit_log_archive",
)


@dataclass(frozen=True)
class RoleNames:
    worker: str
    maintenance: str
    reporting: str

    @classmethod
    def for_prefix(cls, prefix: str) -> RoleNames:
        if not prefix.replace("_", "").isalnum() or not prefix[:1].isalpha():
            raise ValueError(f"invalid role prefix {prefix!r}")
        prefix = prefix.lower()
        return cls(f"{prefix}_worker", f"{prefix}_maintenance", f"{prefix}_reporting")

    def all(self) -> tuple[str, str, str]:
        return (self.worker, self.maintenance, self.reporting)


def append_only_function(maintenance_role: str) -> str:
    """audit_log_append_only(), with the bypass limited to the maintenance role."""
    return f"""
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('app.audit_maintenance', true) = 'on' AND (
        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
        OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{maintenance_role}')
            AND pg_has_role(current_user, '{maintenance_role}', 'MEMBER'))
    ) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def statements(names: RoleNames, database: str, schema: str = "public") -> list[str]:
    """The DDL/DCL, in order. Every statement is safe to repeat."""
    ops = ", ".join(OPERATIONAL_TABLES)
    archives = ", ".join(ARCHIVE_TABLES)
    sql: list[str] = []
    for role in names.all():
        sql.append(
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f"CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    w, m, r = names.worker, names.maintenance, names.reporting
    sql += [
        # Start from nothing on this schema's tables, so a re-run also revokes drift.
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {w}, {m}, {r}",
        f'GRANT CONNECT ON DATABASE "{database}" TO {w}, {m}, {r}',
        f"GRANT USAGE ON SCHEMA {schema} TO {w}, {m}, {r}",
        # worker
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {ops} TO {w}",
        f"GRANT SELECT, INSERT ON audit_log TO {w}",
        f"GRANT SELECT ON {archives}, alembic_version TO {w}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {w}",
        # The qualification run decides into a transaction-local table (even where a
        # hardened database has revoked TEMPORARY from PUBLIC).
        f'GRANT TEMPORARY ON DATABASE "{database}" TO {w}',
        # maintenance = worker + archives + the audit bypass
        f"GRANT {w} TO {m}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {archives} TO {m}",
        f"GRANT UPDATE, DELETE ON audit_log TO {m}",
        # reporting: read only, even if someone grants it more later
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {r}",
        f"ALTER ROLE {r} SET default_transaction_read_only = on",
        # tables the migration owner creates later
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {m}",
        append_only_function(m),
    ]
    return sql


def apply(session: Session, names: RoleNames) -> list[str]:
    """Create or update the roles and grants in the caller's transaction."""
    database = session.scalar(text("SELECT current_database()"))
    done = statements(names, str(database))
    for statement in done:
        session.execute(text(statement))
    return done


def owner(session: Session) -> str:
    """The migration owner: the role that owns the schema's tables (alembic_version)."""
    return str(
        session.scalar(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version' LIMIT 1")
        )
    )


def drop(session: Session, names: RoleNames) -> None:
    """Remove the roles (tests; decommissioning). Their grants in this database go too."""
    for role in names.all():
        exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
        if exists:
            session.execute(text(f"DROP OWNED BY {role}"))
            session.execute(text(f"DROP ROLE {role}"))
