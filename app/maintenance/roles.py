"""Database roles: one per service, each with only the grants its code uses.

``premium-notify db roles`` applies this (idempotently) after every ``db upgrade``; in
compose a one-shot step runs it (docs/security.md "Database roles and grants"). It is
run by an administrator (a superuser, or a role with CREATEROLE that owns the tables).

* ``<prefix>_owner``: owns the schema's objects and runs the migrations; never used by
  a service. Not a superuser: it may create roles (migration 0010 creates the audit
  writer), nothing else beyond owning.
* One NOLOGIN group per service (``SERVICE_GRANTS``): the balance/qualification/outbox
  worker pool, the SMS senders, delivery polling, maintenance (retention, reconciliation,
  backups), the scheduler, the callback receiver, the metrics exporter (``pg_monitor``),
  reporting (read-only) and operators (the CLI). No group may UPDATE, DELETE or TRUNCATE
  audit tables: audit rows come from the audit writer's functions only (migration 0010),
  which groups may EXECUTE where their code calls them. DELETE is granted to maintenance
  alone (retention), the one code that deletes. Partitions are created and dropped
  through the owner's definer functions of migration 0011, EXECUTE for maintenance only.
* ``--logins DIR``: a LOGIN role ``<prefix>_<service>_login`` for each file ``DIR/<service>``
  (its password, sent as a SCRAM verifier computed here, never as clear text), member of
  its group; ``DIR/owner`` makes ``<prefix>_owner`` itself a login (it runs migrations).

Roles are cluster wide; the prefix (DB_ROLE_PREFIX) keeps environments (and parallel tests)
apart. Nothing the append-only rule depends on is created here: that is migration 0010.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.maintenance.repository import roles as repository

RECORD = "public.audit_record(text, uuid, text, text, jsonb, uuid, text)"
REDACT = "public.audit_redact(text, uuid, jsonb, jsonb, jsonb)"
# Partition maintenance (migration 0011): the owner's definer functions, the only way a
# service creates or drops a monthly partition (it owns no table).
PARTITIONS = (
    "public.pn_ensure_partitions(text, date, date)",
    "public.pn_freeze_partition(text, date)",
    "public.pn_retire_partition(text, date, bigint, text, text)",
)

HOT = (
    "customers",
    "daily_balance_checks",
    "monthly_qualifications",
    "notifications",
    "delivery_status",
)
RUNS = ("job_runs", "job_shards")

# (privileges, tables) per service. Every group also gets CONNECT, USAGE on the schema,
# SELECT on alembic_version and INSERT on system_events (events are recorded everywhere).
Grants = tuple[tuple[str, tuple[str, ...]], ...]
SERVICE_GRANTS: dict[str, Grants] = {
    # balances.*, qualification.*, notifications.prepare_month (queues balances,
    # qualification, outbox): checks, qualifications, phone verdicts, the outbox.
    "balances": (
        ("SELECT", (*HOT[:4], "customer_opt_outs", "sms_controls", *RUNS)),
        ("INSERT, UPDATE", ("daily_balance_checks", "monthly_qualifications", "notifications")),
        ("UPDATE", ("customers",)),
        ("INSERT, UPDATE", RUNS),
    ),
    # notifications.send_batch: claims and sends; carrier opt-outs; the breaker trips.
    "sms": (
        ("SELECT", ("customers", "monthly_qualifications", "notifications")),
        ("SELECT", ("customer_opt_outs", "sms_controls", *RUNS)),
        ("UPDATE", ("notifications",)),
        ("INSERT", ("customer_opt_outs",)),
        ("INSERT, UPDATE", ("sms_controls", *RUNS)),
    ),
    # delivery.*: polls the carrier, records statuses.
    "delivery": (
        ("SELECT", ("notifications", "delivery_status", "callback_receipts", "sms_controls")),
        ("SELECT, INSERT, UPDATE", ("delivery_status", *RUNS)),
        ("UPDATE", ("notifications",)),
    ),
    # serve callbacks: receipts, statuses, inbound STOP/START.
    "callbacks": (
        ("SELECT", ("customers", "notifications", "delivery_status", "customer_opt_outs")),
        ("SELECT", ("callback_receipts", "sms_controls")),
        ("INSERT", ("callback_receipts", "customer_opt_outs", "delivery_status")),
        ("UPDATE", ("delivery_status", "notifications")),
    ),
    # retention, notifications.reconcile, dlq, backups (pg_dump reads every table).
    # Checks, audit rows and system events leave by partition (the owner's definer
    # functions, below): DELETE only where retention deletes a month's rows.
    "maintenance": (
        ("SELECT", ("ALL",)),
        ("INSERT, UPDATE", RUNS),
        ("UPDATE", ("notifications",)),
        ("DELETE", ("monthly_qualifications", "notifications", "delivery_status")),
    ),
    # periodiq only enqueues.
    "scheduler": (),
    # postgres-exporter: pg_monitor (statistics), no table.
    "exporter": (),
    # Grafana, reports: read only (default_transaction_read_only too).
    "reporting": (("SELECT", ("ALL",)),),
    # People at the CLI: imports, GDPR, runs in-process (member of the pools, below).
    "operator": (
        ("SELECT", ("ALL",)),
        ("INSERT, UPDATE", ("customers", "sms_controls", *RUNS)),
        ("UPDATE", ("notifications_archive",)),  # erasure of rows archived before issue 21
    ),
}
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "balances": (RECORD,),
    "sms": (RECORD,),
    "delivery": (RECORD,),
    "callbacks": (RECORD,),
    "maintenance": (RECORD, *PARTITIONS),
    "operator": (RECORD, REDACT),
}
TEMPORARY = ("balances", "operator")  # staging and decision tables (transaction-local)
MEMBER_OF = {"operator": ("balances", "sms", "delivery", "maintenance")}
SYSTEM_ROLES = {"exporter": ("pg_monitor",)}
READ_ONLY = ("reporting", "exporter")


@dataclass(frozen=True)
class RoleNames:
    prefix: str

    @classmethod
    def for_prefix(cls, prefix: str) -> RoleNames:
        if not prefix.replace("_", "").isalnum() or not prefix[:1].isalpha():
            raise ValueError(f"invalid role prefix {prefix!r}")
        return cls(prefix.lower())

    @property
    def owner(self) -> str:
        return f"{self.prefix}_owner"

    def group(self, service: str) -> str:
        return f"{self.prefix}_{service}"

    def login(self, service: str) -> str:
        return self.owner if service == "owner" else f"{self.prefix}_{service}_login"

    def all(self) -> list[str]:
        return [self.owner, *(self.group(s) for s in SERVICE_GRANTS)]


def statements(
    names: RoleNames, database: str, schema: str = "public", migrated: bool = True
) -> list[str]:
    """The DDL/DCL, in order. Every statement is safe to repeat. Before the first
    migration (``migrated`` False) only the roles and the owner's rights."""
    return repository.grant_statements(
        names.owner,
        {names.group(s): g for s, g in SERVICE_GRANTS.items()},
        {names.group(s): f for s, f in FUNCTIONS.items()},
        temporary=[names.group(s) for s in TEMPORARY],
        members={names.group(s): [names.group(m) for m in ms] for s, ms in MEMBER_OF.items()},
        system_roles={names.group(s): r for s, r in SYSTEM_ROLES.items()},
        read_only=[names.group(s) for s in READ_ONLY],
        database=database,
        schema=schema,
        migrated=migrated,
    )


def apply(session: Session, names: RoleNames, logins: Path | None = None) -> list[str]:
    """Create or update the roles and grants in the caller's transaction; with ``logins``
    also the login roles whose password files are there (returns the statements run,
    passwords left out)."""
    done = statements(
        names, repository.current_database(session), migrated=repository.migrated(session)
    )
    repository.execute_all(session, done)
    if logins is not None:
        made = []
        for service in ("owner", *SERVICE_GRANTS):
            path = logins / service
            if path.is_file():
                group = None if service == "owner" else names.group(service)
                repository.ensure_login(
                    session, names.login(service), path.read_text().strip(), group
                )
                made.append(names.login(service))
        # The server log must not keep the values these logins' statements carry
        # (psycopg2 sends literals): app/db/statement_logging.py. Superuser-only settings,
        # so the compose roles step (the administrator) applies them.
        if made and repository.is_superuser(session):
            repository.quiet_statement_logging(session, made)
    return done


def owner(session: Session) -> str:
    """The role that owns the schema's tables (alembic_version)."""
    return repository.table_owner(session)


def owners_problem(session: Session, names: RoleNames) -> str | None:
    """A service group that owns a table could ALTER it (disable its triggers)."""
    groups = [names.group(s) for s in SERVICE_GRANTS]
    owned = repository.tables_owned_by(session, groups)
    return f"service roles own tables: {', '.join(owned)}" if owned else None


def drop(session: Session, names: RoleNames) -> None:
    """Remove the roles (tests; decommissioning). Their grants in this database go too."""
    for service in SERVICE_GRANTS:
        repository.drop_role(session, names.login(service))
    for role in reversed(names.all()):
        repository.drop_role(session, role)
