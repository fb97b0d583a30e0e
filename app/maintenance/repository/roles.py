"""SQL of the database roles: the DDL/DCL that creates and grants them, and its execution.

Role, database and schema names are formatted into the statements (DDL takes no bound
parameters); they come from ``RoleNames`` (validated prefix) and the connection itself.
Passwords never appear in SQL text: a SCRAM verifier is computed on the client
(libpq's ``PQencryptPasswordConn``) and only that is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

ALL = "ALL"


def _create(role: str, extra: str = "NOLOGIN") -> str:
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} {extra}; END IF; END $$"
    )


def _tables(tables: Sequence[str], schema: str) -> str:
    if tuple(tables) == (ALL,):
        return f"ALL TABLES IN SCHEMA {schema}"
    return ", ".join(f"{schema}.{t}" for t in tables)


def grant_statements(
    owner: str,
    grants: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
    functions: Mapping[str, Sequence[str]],
    *,
    temporary: Sequence[str],
    members: Mapping[str, Sequence[str]],
    system_roles: Mapping[str, Sequence[str]],
    read_only: Sequence[str],
    database: str,
    schema: str = "public",
    migrated: bool = True,
) -> list[str]:
    """The DDL/DCL for the owner and the service groups, in order. Safe to repeat.
    ``migrated`` False (no schema yet): only the roles and the owner's rights."""
    groups = list(grants)
    everyone = ", ".join(groups)
    sql = [_create(owner, "NOLOGIN NOSUPERUSER NOCREATEDB CREATEROLE")]
    sql += [_create(g) for g in groups]
    sql += [
        # Only the owner creates objects (PostgreSQL 15 no longer lets PUBLIC).
        f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC",
        # With grant option: migration 0010 hands CREATE to the audit writer for a moment.
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {owner} WITH GRANT OPTION",
        f'GRANT CONNECT ON DATABASE "{database}" TO {owner}',
    ]
    if not migrated:  # before the first migration: the roles alone (the owner runs it)
        return sql
    sql += [
        # Start from nothing, so a re-run also revokes drift (tables and functions).
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {everyone}",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {everyone}",
        # Temporary tables only for the groups that stage data in them.
        f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC, {everyone}',
        f'GRANT CONNECT ON DATABASE "{database}" TO {everyone}',
        f"GRANT USAGE ON SCHEMA {schema} TO {everyone}",
        f"GRANT SELECT ON {schema}.alembic_version TO {everyone}",
        f"GRANT INSERT ON {schema}.system_events TO {everyone}",
    ]
    for group, entries in grants.items():
        for privileges, tables in entries:
            sql.append(f"GRANT {privileges} ON {_tables(tables, schema)} TO {group}")
    for group, names in functions.items():
        sql += [f"GRANT EXECUTE ON FUNCTION {f} TO {group}" for f in names]
    sql += [f'GRANT TEMPORARY ON DATABASE "{database}" TO {g}' for g in temporary]
    for group, parents in members.items():
        sql += [f"GRANT {p} TO {group}" for p in parents]
    for group, roles in system_roles.items():
        sql += [f"GRANT {r} TO {group}" for r in roles]
    sql += [f"ALTER ROLE {g} SET default_transaction_read_only = on" for g in read_only]
    return sql


def migrated(session: Session, schema: str = "public") -> bool:
    """Whether the migrations have run (alembic_version exists)."""
    return bool(
        session.scalar(
            text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{schema}.alembic_version"}
        )
    )


def current_database(session: Session) -> str:
    """The name of the database the session is connected to."""
    return str(session.scalar(text("SELECT current_database()")))


def execute_all(session: Session, statements: Iterable[str]) -> None:
    """Run the statements, in order, in the caller's transaction."""
    for statement in statements:
        session.execute(text(statement))


def ensure_login(session: Session, role: str, password: str, group: str | None) -> None:
    """Create (or update) a LOGIN role with this password (sent as a SCRAM verifier)."""
    from typing import cast

    from psycopg2.extensions import connection, encrypt_password

    raw = cast(connection, session.connection().connection.dbapi_connection)
    verifier = encrypt_password(password, role, raw, "scram-sha-256")
    exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    verb = "ALTER" if exists else "CREATE"
    # The verifier is not the password; DDL takes no bound parameters, so quote it here.
    quoted = "'" + verifier.replace("'", "''") + "'"
    # Not text(): a verifier contains colons, which text() would read as parameters.
    session.connection().exec_driver_sql(f"{verb} ROLE {role} LOGIN PASSWORD {quoted}")
    if group:
        session.execute(text(f"GRANT {group} TO {role}"))


def is_superuser(session: Session) -> bool:
    """Whether the session's role may set superuser-only parameters (log_*) on roles."""
    return bool(
        session.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar()
    )


def quiet_statement_logging(session: Session, roles: Iterable[str]) -> None:
    """Keep the server log free of the values these roles' statements carry."""
    from app.db.statement_logging import apply_role_settings

    apply_role_settings(session.connection().connection.dbapi_connection, roles)


def table_owner(session: Session) -> str:
    """The role that owns alembic_version (the migration owner)."""
    return str(
        session.scalar(
            text("SELECT tableowner FROM pg_tables WHERE tablename = 'alembic_version' LIMIT 1")
        )
    )


def tables_owned_by(session: Session, roles: Sequence[str]) -> list[str]:
    """Tables of the public schema owned by any of ``roles``."""
    return list(
        session.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tableowner = ANY(:roles) ORDER BY 1"
            ),
            {"roles": list(roles)},
        )
    )


def drop_role(session: Session, role: str) -> None:
    """Drop the role and whatever it owns or was granted in this database, if it exists."""
    exists = session.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if exists:
        session.execute(text(f"DROP OWNED BY {role}"))
        session.execute(text(f"DROP ROLE {role}"))
