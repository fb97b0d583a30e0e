"""Partition maintenance under least privilege: three definer functions and a ledger.

Creating a partition, detaching and dropping one need ownership of the partitioned
parent (migration 0009's daily_balance_checks, audit_log, system_events); the services
own nothing (migration 0010, ``db roles``). The maintenance role gets exactly three
narrow doors, SECURITY DEFINER functions owned by the migration owner, with a pinned
``search_path`` and schema-qualified names, EXECUTE granted by ``db roles`` to the
maintenance group only:

* ``pn_ensure_partitions(table, first, last)``: creates the missing monthly partitions
  ``<table>_pYYYYMM`` of one of the three tables for ``first`` .. ``last`` (at most 120
  months per call), names their indexes after the seed names, returns the names
  created. Nothing else: no partition is altered or dropped.
* ``pn_freeze_partition(table, month)``: adds ``CHECK (false) NOT VALID`` to one month
  past its horizon (below), so no row can be added or changed any more: what retention
  then counts and exports is all the month will ever hold. Idempotent.
* ``pn_retire_partition(table, month, rows, cold_set, manifest_sha256)``: detaches and
  drops one month, only when (1) the table is one of the three, (2) the month ended
  before its retention horizon measured on the database's clock (daily_balance_checks and
  system_events one year, audit_log two: the seed's periods; a shorter setting cannot
  make the database drop a hot month), (3) for the tables kept in cold storage
  (daily_balance_checks, audit_log) the caller names the verified cold set and its row
  count, and the partition holds exactly that many rows: a frozen partition cannot have
  changed since retention counted it, so its count is taken as given (the drop's work
  does not grow with the month); one not frozen is counted under the detach's lock.
  Each retirement is recorded in ``pn_retired_partitions`` (who, when, rows, where the
  set is, its manifest's SHA-256), which ``audit verify`` reads: the audit days of a
  retired month are checked by their seals (which stay in the database) and, given the
  cold store, by the statement digests of the cold files.

The horizon: the maintenance role is trusted with the count of a frozen partition (its
own export's; a claim of "empty" is checked, one row is enough); what it cannot do is
drop or freeze a month inside the horizon, drop a table other than the three, or touch
the tables in any other way.

``pn_retired_partitions`` is append-only (0010's ``archive_no_delete()`` refuses UPDATE,
DELETE and TRUNCATE); services may only read it.

Self-contained: nothing is imported from app/.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 15:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp SET \"TimeZone\" = 'UTC'"

LEDGER = """
CREATE TABLE public.pn_retired_partitions (
    id bigint GENERATED ALWAYS AS IDENTITY,
    table_name varchar(63) NOT NULL,
    month date NOT NULL,
    row_count bigint NOT NULL,
    cold_set text,
    manifest_sha256 varchar(64),
    db_user varchar(63) NOT NULL,
    retired_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT pn_retired_partitions_pkey PRIMARY KEY (id)
);
CREATE INDEX idx_retired_partitions_table_month ON public.pn_retired_partitions
    (table_name, month);
CREATE TRIGGER pn_retired_partitions_no_update_delete BEFORE UPDATE OR DELETE
    ON public.pn_retired_partitions FOR EACH ROW EXECUTE FUNCTION public.archive_no_delete();
CREATE TRIGGER pn_retired_partitions_no_truncate BEFORE TRUNCATE
    ON public.pn_retired_partitions FOR EACH STATEMENT EXECUTE FUNCTION public.archive_no_delete();
"""

# A partition's indexes are named after their parent index (the seed name) and the month
# (as migration 0009 and the kick always did): daily_balance_checks_pkey_202610.
ENSURE = f"""
CREATE FUNCTION public.pn_ensure_partitions(p_table text, p_first date, p_last date)
RETURNS text[] LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    m date;
    part text;
    created text[] := '{{}}';
    r record;
BEGIN
    IF p_table IS NULL OR p_table NOT IN ('daily_balance_checks', 'audit_log', 'system_events')
    THEN
        RAISE EXCEPTION 'not a partitioned table: %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_first IS NULL OR p_last IS NULL OR p_last < p_first THEN
        RAISE EXCEPTION 'invalid month range % .. %', p_first, p_last
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_last >= (date_trunc('month', p_first) + interval '120 months')::date THEN
        RAISE EXCEPTION 'more than 120 months of partitions in one call refused (% .. %)',
            p_first, p_last USING ERRCODE = 'invalid_parameter_value';
    END IF;
    m := date_trunc('month', p_first)::date;
    WHILE m <= p_last LOOP
        part := p_table || '_p' || to_char(m, 'YYYYMM');
        IF to_regclass('public.' || part) IS NULL THEN
            EXECUTE format('CREATE TABLE public.%I PARTITION OF public.%I FOR VALUES FROM (%L) '
                           'TO (%L)', part, p_table, m, (m + interval '1 month')::date);
            FOR r IN SELECT ci.relname AS child, cp.relname AS parent
                     FROM pg_index i
                     JOIN pg_class ci ON ci.oid = i.indexrelid
                     JOIN pg_inherits h ON h.inhrelid = i.indexrelid
                     JOIN pg_class cp ON cp.oid = h.inhparent
                     WHERE i.indrelid = ('public.' || quote_ident(part))::regclass
            LOOP
                EXECUTE format('ALTER INDEX public.%I RENAME TO %I', r.child,
                               left(r.parent, 56) || '_' || to_char(m, 'YYYYMM'));
            END LOOP;
            created := created || part;
        END IF;
        m := (m + interval '1 month')::date;
    END LOOP;
    RETURN created;
END;
$fn$;
"""

# The month of a known table, past its horizon on the database's clock: the partition's
# name, or an exception. (Invoker: called only from the two definer functions below.)
DUE = f"""
CREATE FUNCTION public.pn_partition_due(p_table text, p_month date) RETURNS text
LANGUAGE plpgsql {PIN} AS $fn$
DECLARE
    horizon integer;
    part text;
BEGIN
    horizon := CASE p_table WHEN 'daily_balance_checks' THEN 365 WHEN 'audit_log' THEN 730
                            WHEN 'system_events' THEN 365 END;
    IF horizon IS NULL THEN
        RAISE EXCEPTION 'not a partitioned table: %', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_month IS NULL OR p_month <> date_trunc('month', p_month)::date THEN
        RAISE EXCEPTION 'not the first day of a month: %', p_month
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (p_month + interval '1 month')::date > LOCALTIMESTAMP::date - horizon THEN
        RAISE EXCEPTION '% of % is inside its retention horizon (% days)',
            to_char(p_month, 'YYYY-MM'), p_table, horizon
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    part := p_table || '_p' || to_char(p_month, 'YYYYMM');
    IF NOT EXISTS (SELECT 1 FROM pg_inherits i
                   WHERE i.inhparent = ('public.' || p_table)::regclass
                     AND i.inhrelid = to_regclass('public.' || part)) THEN
        RAISE EXCEPTION 'no partition % of %', part, p_table USING ERRCODE = 'undefined_table';
    END IF;
    RETURN part;
END;
$fn$;
"""

# Freeze: CHECK (false) NOT VALID refuses every new or changed row from now on (existing
# rows are not checked), so what retention counts and exports next is all the month
# will ever hold, and the drop needs no count scan.
FREEZE = f"""
CREATE FUNCTION public.pn_freeze_partition(p_table text, p_month date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    part text := public.pn_partition_due(p_table, p_month);
BEGIN
    IF EXISTS (SELECT 1 FROM pg_constraint
               WHERE conrelid = ('public.' || part)::regclass AND conname = part || '_frozen')
    THEN
        RETURN false;
    END IF;
    EXECUTE format('ALTER TABLE public.%I ADD CONSTRAINT %I CHECK (false) NOT VALID',
                   part, part || '_frozen');
    RETURN true;
END;
$fn$;
"""

RETIRE = f"""
CREATE FUNCTION public.pn_retire_partition(
    p_table text, p_month date, p_rows bigint, p_cold_set text, p_manifest_sha256 text
) RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    part text := public.pn_partition_due(p_table, p_month);
    frozen boolean;
    found bigint;
BEGIN
    frozen := EXISTS (SELECT 1 FROM pg_constraint
                      WHERE conrelid = ('public.' || part)::regclass
                        AND conname = part || '_frozen');
    EXECUTE format('ALTER TABLE public.%I DETACH PARTITION public.%I', p_table, part);
    IF p_table = 'system_events' OR NOT frozen THEN
        EXECUTE format('SELECT count(*) FROM public.%I', part) INTO found;
    ELSE
        found := p_rows;  -- frozen before it was counted and exported: it cannot have grown
        IF p_rows = 0 THEN  -- "empty", with no cold set to show for it: one row disproves it
            EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM public.%I LIMIT 1) r', part)
                INTO found;
        END IF;
    END IF;
    IF p_table <> 'system_events' AND (p_rows IS NULL OR p_rows <> found
            OR (found > 0 AND (p_cold_set IS NULL OR p_manifest_sha256 IS NULL))) THEN
        RAISE EXCEPTION '% holds % rows, % verified in cold storage (%)', part, found,
            coalesce(p_rows::text, 'none'), coalesce(p_cold_set, 'no set')
            USING ERRCODE = 'check_violation';
    END IF;
    EXECUTE format('DROP TABLE public.%I', part);
    INSERT INTO public.pn_retired_partitions (table_name, month, row_count, cold_set,
                                              manifest_sha256, db_user)
    VALUES (p_table, p_month, found, p_cold_set, p_manifest_sha256, session_user);
    RETURN found;
END;
$fn$;
"""

FUNCTIONS = (
    "public.pn_ensure_partitions(text, date, date)",
    "public.pn_freeze_partition(text, date)",
    "public.pn_retire_partition(text, date, bigint, text, text)",
)


def upgrade() -> None:
    op.execute(LEDGER)
    op.execute(ENSURE)
    op.execute(DUE)
    op.execute(FREEZE)
    op.execute(RETIRE)
    for function in (*FUNCTIONS, "public.pn_partition_due(text, date)"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def downgrade() -> None:
    for function in (*FUNCTIONS, "public.pn_partition_due(text, date)"):
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP TABLE public.pn_retired_partitions")
