"""Monthly range partitions for daily_balance_checks, audit_log and system_events.

Each table is converted in place: the old table is renamed (with its indexes and
constraints), a partitioned parent is created under the seed's name with every seed
index and constraint under its seed name, one partition per month is created covering
the existing rows, the hot year before the current month, the current month and the
next two, the rows are copied, the old table is dropped, and the triggers
(statement-level audit triggers on daily_balance_checks, the append-only triggers on
audit_log) and the grants are re-created on the new parent. There is no default
partition: a row outside every partition fails with "no partition of relation ... found
for row". The maintenance kick ``maintenance.partitions_kick`` keeps at least the next
two months created.

Departure from the seed (docs/decisions.md 12): the primary key of a partitioned table
must contain the partition column, so the primary keys become (id, check_date),
(id, "timestamp") and (id, created_at) under their old names.

Cost: the copy rewrites every row of the three tables once (plus their indexes and the
WAL for both) under an ACCESS EXCLUSIVE lock; see docs/operations.md ("Converting a live
database") for how to run it on a live system. The downgrade copies the rows back into
plain tables the same way.

Partitions are named <table>_pYYYYMM; the bounds are [first day of the month, first day
of the next). audit_log and system_events are partitioned by their UTC timestamp,
daily_balance_checks by its (local) check date.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONTHS_AHEAD = 2

# table -> partition column (quoted as SQL needs it)
TABLES: dict[str, str] = {
    "daily_balance_checks": "check_date",
    "audit_log": '"timestamp"',
    "system_events": "created_at",
}

# Constraints and indexes by their seed names (the DDL this migration runs, kept here so
# that editing live code never changes it). {t} is the table name.
CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "daily_balance_checks": (
        "ALTER TABLE {t} ADD CONSTRAINT daily_balance_checks_pkey PRIMARY KEY ({pk})",
        "ALTER TABLE {t} ADD CONSTRAINT daily_balance_checks_customer_id_check_date_key "
        "UNIQUE (customer_id, check_date)",
        "ALTER TABLE {t} ADD CONSTRAINT daily_balance_checks_customer_id_fkey "
        "FOREIGN KEY (customer_id) REFERENCES customers (id)",
        "CREATE INDEX idx_daily_checks_customer_date ON {t} (customer_id, check_date)",
        "CREATE INDEX idx_daily_checks_customer_month ON {t} "
        "(customer_id, EXTRACT(year FROM check_date), EXTRACT(month FROM check_date))",
        "CREATE INDEX idx_daily_checks_date_status ON {t} (check_date, passes_threshold)",
    ),
    "audit_log": (
        "ALTER TABLE {t} ADD CONSTRAINT audit_log_pkey PRIMARY KEY ({pk})",
        "CREATE INDEX idx_audit_correlation ON {t} (correlation_id)",
        "CREATE INDEX idx_audit_entity ON {t} (entity_type, entity_id)",
        'CREATE INDEX idx_audit_operation ON {t} (operation, "timestamp")',
        'CREATE INDEX idx_audit_timestamp ON {t} ("timestamp" DESC)',
    ),
    "system_events": (
        "ALTER TABLE {t} ADD CONSTRAINT system_events_pkey PRIMARY KEY ({pk})",
        "CREATE INDEX idx_system_events_service ON {t} (service_name)",
        "CREATE INDEX idx_system_events_severity ON {t} (severity)",
        "CREATE INDEX idx_system_events_timestamp ON {t} (created_at DESC)",
        "CREATE INDEX idx_system_events_type ON {t} (event_type)",
    ),
}

TRIGGERS: dict[str, tuple[str, ...]] = {
    "daily_balance_checks": (
        "CREATE TRIGGER daily_balance_checks_audit_insert AFTER INSERT ON daily_balance_checks "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION audit_statement('BalanceCheck', 'BalanceMonitor', '{}')",
        "CREATE TRIGGER daily_balance_checks_audit_update AFTER UPDATE ON daily_balance_checks "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION audit_statement('BalanceCheck', 'BalanceMonitor', '{}')",
    ),
    "audit_log": (
        "CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ),
    "system_events": (),
}

# A partition's indexes are named after their parent index (the seed name) and the month,
# so a constraint violation names the seed constraint: daily_balance_checks_pkey_202610.
RENAME_INDEXES = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT ci.relname AS child, cp.relname AS parent
             FROM pg_index i
             JOIN pg_class ci ON ci.oid = i.indexrelid
             JOIN pg_inherits h ON h.inhrelid = i.indexrelid
             JOIN pg_class cp ON cp.oid = h.inhparent
             WHERE i.indrelid = '{partition}'::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', r.child, left(r.parent, 56) || '_{suffix}');
    END LOOP;
END $$;
"""


def _month(d: date) -> date:
    return d.replace(day=1)


def _next(d: date) -> date:
    return date(d.year + d.month // 12, d.month % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    out, m = [], _month(first)
    while m <= last:
        out.append(m)
        m = _next(m)
    return out


def _grants(table: str) -> list[str]:
    """GRANT statements re-creating the table's privileges (roles made by `db roles`)."""
    rows = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT grantee, string_agg(privilege_type, ', ') FROM "
                "information_schema.role_table_grants WHERE table_schema = 'public' "
                "AND table_name = :t AND grantee <> (SELECT tableowner FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename = :t) GROUP BY grantee"
            ),
            {"t": table},
        )
        .all()
    )
    return [
        f"GRANT {privs} ON {table} TO " + ("PUBLIC" if grantee == "PUBLIC" else f'"{grantee}"')
        for grantee, privs in rows
    ]


def _refuse_referencing_keys(table: str) -> None:
    """No foreign key may point at the table (a partitioned copy would need it re-made)."""
    refs = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT conname FROM pg_constraint WHERE contype = 'f' "
                "AND confrelid = CAST(:t AS regclass)"
            ),
            {"t": table},
        )
        .scalars()
        .all()
    )
    if refs:
        raise RuntimeError(f"{table} is referenced by foreign keys {refs}: convert them first")


def _rename_old(table: str, suffix: str) -> str:
    """Rename the table, its indexes and constraints out of the way; returns the new name."""
    bind = op.get_bind()
    old = f"{table}_{suffix}"
    for name in bind.execute(
        sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = CAST(:t AS regclass) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid "
            "AND k.conrelid = i.indrelid)"
        ),
        {"t": table},
    ).scalars():
        op.execute(f'ALTER INDEX "{name}" RENAME TO "{name[:50]}_{suffix}"')
    for name in bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = CAST(:t AS regclass)"),
        {"t": table},
    ).scalars():
        op.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{name}" TO "{name[:50]}_{suffix}"')
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    return old


def _convert(table: str, partitioned: bool) -> None:
    column = TABLES[table]
    _refuse_referencing_keys(table)
    grants = _grants(table)
    old = _rename_old(table, "unpartitioned" if partitioned else "partitioned")
    like = f"LIKE {old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE"
    if partitioned:
        op.execute(f"CREATE TABLE {table} ({like}) PARTITION BY RANGE ({column})")
        bounds = (
            op.get_bind()
            .execute(
                sa.text(
                    f"SELECT CAST(min({column}) AS date), CAST(max({column}) AS date), "
                    "CAST(LOCALTIMESTAMP AS date) FROM " + old
                )
            )
            .one()
        )
        today = bounds[2]
        hot = date(today.year - 1, today.month, 1)  # the hot year: late files, gap repair
        first = min(d for d in (bounds[0], hot) if d is not None)
        last = max(d for d in (bounds[1], today) if d is not None)
        ahead = today
        for _ in range(MONTHS_AHEAD):
            ahead = _next(ahead)
        months = _months(first, max(last, ahead))
        for month in months:
            op.execute(
                f"CREATE TABLE {table}_p{month:%Y%m} PARTITION OF {table} "
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next(month).isoformat()}')"
            )
        pk = f"id, {column}"
    else:
        op.execute(f"CREATE TABLE {table} ({like})")
        pk, months = "id", []
    for statement in CONSTRAINTS[table]:
        op.execute(statement.format(t=table, pk=pk))
    if partitioned:
        for month in months:
            name = f"{table}_p{month:%Y%m}"
            op.execute(RENAME_INDEXES.format(partition=name, suffix=f"{month:%Y%m}"))
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old} CASCADE")  # its partitions too, on the way down
    for statement in TRIGGERS[table]:
        op.execute(statement)
    for statement in grants:
        op.execute(statement)
    op.execute(f"ANALYZE {table}")


def upgrade() -> None:
    op.execute("SET LOCAL app.audit_maintenance = 'on'")
    for table in TABLES:
        _convert(table, partitioned=True)


def downgrade() -> None:
    op.execute("SET LOCAL app.audit_maintenance = 'on'")
    for table in TABLES:
        _convert(table, partitioned=False)
