"""Retention no longer moves audit rows: drop the row-archival doors of migration 0010.

Since issue 21 (migrations 0009 and 0011) retention retires whole monthly partitions of
``audit_log`` to cold storage through the owner's ``pn_retire_partition``. The two
definer functions that moved audit rows one by one into ``audit_log_archive``
(``audit_archive``, then ``audit_retire``, which deleted the hot copy) are called by no
code any more; each was a door through which a role holding EXECUTE could take rows out
of the hot trail. They are dropped, and the audit writer loses the rights only they
used: DELETE on ``audit_log`` and ``audit_log_archive`` and INSERT on the archive. The
writer keeps what its remaining functions use (``audit_record``, the statement trigger,
the seals, ``audit_redact``, which may rewrite an archived row's JSON for an erasure).

``audit_log_archive`` stays, append-only, with whatever rows a database archived before
issue 21: ``audit verify`` and GDPR still read it.

Downgrade restores both functions (as 0010 wrote them) and the grants.

Self-contained: nothing is imported from app/.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITER = "pn_audit_writer"
PIN = (
    "SET search_path = pg_catalog, pg_temp SET \"TimeZone\" = 'UTC' SET \"DateStyle\" = 'ISO, YMD'"
)
FUNCTIONS = ("public.audit_archive(uuid[])", "public.audit_retire(uuid[])")

# Migration 0010's definitions, for the downgrade.
ARCHIVE_FUNCTIONS = f"""
CREATE FUNCTION public.audit_archive(p_ids uuid[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    n integer;
BEGIN
    INSERT INTO public.audit_log_archive (id, entity_type, entity_id, operation, old_values,
        new_values, correlation_id, user_id, service_name, "timestamp", details, db_user,
        statement_id, row_hash)
    SELECT id, entity_type, entity_id, operation, old_values, new_values, correlation_id,
           user_id, service_name, "timestamp", details, db_user, statement_id, row_hash
    FROM public.audit_log WHERE id = ANY(p_ids)
    ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$fn$;
CREATE FUNCTION public.audit_retire(p_ids uuid[]) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    n integer;
BEGIN
    DELETE FROM public.audit_log a WHERE a.id = ANY(p_ids) AND EXISTS (
        SELECT 1 FROM public.audit_log_archive r
        WHERE r.id = a.id AND r."timestamp" = a."timestamp"
          AND r.row_hash IS NOT DISTINCT FROM a.row_hash
          AND r.statement_id IS NOT DISTINCT FROM a.statement_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END;
$fn$;
"""


def upgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.execute(f"REVOKE DELETE ON public.audit_log, public.audit_log_archive FROM {WRITER}")
    op.execute(f"REVOKE INSERT ON public.audit_log_archive FROM {WRITER}")


def downgrade() -> None:
    op.execute(f"GRANT DELETE ON public.audit_log, public.audit_log_archive TO {WRITER}")
    op.execute(f"GRANT INSERT ON public.audit_log_archive TO {WRITER}")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {WRITER}")
    op.execute(ARCHIVE_FUNCTIONS)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"ALTER FUNCTION {function} OWNER TO {WRITER}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {WRITER}")
