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

from sqlalchemy.orm import Session

from app.maintenance.repository import roles as repository


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


def statements(names: RoleNames, database: str, schema: str = "public") -> list[str]:
    """The DDL/DCL, in order. Every statement is safe to repeat."""
    return repository.grant_statements(
        names.worker, names.maintenance, names.reporting, database, schema
    )


def apply(session: Session, names: RoleNames) -> list[str]:
    """Create or update the roles and grants in the caller's transaction."""
    done = statements(names, repository.current_database(session))
    repository.execute_all(session, done)
    return done


def owner(session: Session) -> str:
    """The migration owner: the role that owns the schema's tables (alembic_version)."""
    return repository.table_owner(session)


def drop(session: Session, names: RoleNames) -> None:
    """Remove the roles (tests; decommissioning). Their grants in this database go too."""
    for role in names.all():
        repository.drop_role(session, role)
