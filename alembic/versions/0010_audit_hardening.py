"""An audit trail a bank auditor accepts (issue 17): definer functions, seals, no bypass.

* ``pn_audit_writer``: a NOLOGIN role (cluster wide, created here if missing) that owns
  the audit functions. They are SECURITY DEFINER with ``search_path = pg_catalog,
  pg_temp`` and schema-qualified names (a temporary ``audit_log`` cannot capture their
  rows) and ``TimeZone = UTC`` (the recorded server time is the transaction's start in
  UTC whatever the caller set). Application roles get no DML on ``audit_log``: rows come
  from the statement triggers and from ``audit_record()``.
* Every row records ``db_user`` (``session_user``: the database login, which SET ROLE
  cannot change) and server time; a claimed operator ``cli:...`` is rewritten to
  ``cli:<session_user>`` (the CLI operator is the database login, never ``$USER``).
* DELETE on every audited table is audited, and every change of ``customers`` and
  ``delivery_status`` (personal columns are left out of the JSON; an UPDATE that changed
  only those says which in ``details.changed``).
* Tamper evidence: each row carries ``row_hash`` (sha256 of its content, computed
  set-based in the statement's one INSERT ... SELECT), and ``statement_id``. The
  statement's digest (sha256 over its rows' hashes in id order) goes to
  ``audit_pending_seals``; a deferred constraint trigger chains it at commit into
  ``audit_seals`` (day, seq): seal = sha256(previous seal of the day || seq || digest),
  under a per-day advisory lock held only from that trigger to the commit
  (docs/security.md explains why this is sound and what it costs).
* Append-only, with no setting any role can flip: UPDATE and DELETE of ``audit_log``,
  ``audit_log_archive``, ``audit_seals`` pass only inside the writer's functions
  (``current_user = pn_audit_writer``): retention archival (``audit_archive`` then
  ``audit_retire``, which deletes only rows the archive holds with the same hash) and
  GDPR redaction (``audit_redact``, itself recorded). TRUNCATE is always refused. The
  other archives refuse DELETE and TRUNCATE; callback_receipts and customer_opt_outs
  (0003, 0008) no longer honour the setting either.

Self-contained: nothing is imported from app/. Works whether audit_log is a plain or a
partitioned table (triggers on the parent; no ctid, no unique constraint on audit_log).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 14:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITER = "pn_audit_writer"
SEAL_LOCK_CLASS = 1886281077  # 'pnau': pg_advisory_xact_lock(class, day number)
PIN = (
    "SET search_path = pg_catalog, pg_temp SET \"TimeZone\" = 'UTC' SET \"DateStyle\" = 'ISO, YMD'"
)
AUDIT_TABLES = ("audit_log", "audit_log_archive")
OTHER_ARCHIVES = (
    "daily_balance_checks_archive",
    "monthly_qualifications_archive",
    "notifications_archive",
    "delivery_status_archive",
)

CREATE_WRITER = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{WRITER}') THEN
        BEGIN
            CREATE ROLE {WRITER} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's migration created it meanwhile
        END;
    END IF;
    -- Only to hand it the functions (ALTER ... OWNER needs membership): the migration
    -- owner already owns every table, so this gives it nothing new.
    IF NOT pg_catalog.pg_has_role(current_user, '{WRITER}', 'MEMBER') THEN
        EXECUTE format('GRANT {WRITER} TO %I', current_user);
    END IF;
END $$;
"""

TABLES = """
CREATE SEQUENCE public.audit_statement_seq;
CREATE TABLE public.audit_pending_seals (
    statement_id bigint NOT NULL,
    day date NOT NULL,
    row_count integer NOT NULL,
    digest bytea NOT NULL,
    CONSTRAINT audit_pending_seals_pkey PRIMARY KEY (statement_id)
);
CREATE TABLE public.audit_seals (
    day date NOT NULL,
    seq bigint NOT NULL,
    statement_id bigint NOT NULL,
    row_count integer NOT NULL,
    digest bytea NOT NULL,
    prev_seal bytea NOT NULL,
    seal bytea NOT NULL,
    db_user varchar(63) NOT NULL,
    sealed_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT audit_seals_pkey PRIMARY KEY (day, seq),
    CONSTRAINT audit_seals_statement_id_key UNIQUE (statement_id)
);
"""


# The row hash: sha256 over one line of text, the row's columns in a fixed order joined
# by '|': uuids and the statement id as text, NULL as '-', the JSON documents as jsonb's
# canonical text (valid JSON never contains a bare '|' nor starts with '-|', so they
# need no length), every other text as <octet length>:<text>, the timestamp in ISO
# (every caller pins DateStyle). The statement-wide columns come last, so a trigger
# computes that tail once per statement (``_suffix``) and concat() builds each line in
# one pass. `audit verify` recomputes the same expression itself
# (app/maintenance/repository/audit_chain.py).
def _text(value: str) -> str:
    return f"coalesce(octet_length({value})::text || ':' || {value}, '-')"


def _suffix(*columns: str) -> str:
    """'|' and the statement-wide columns: entity_type, operation, user_id, service_name,
    timestamp, db_user, statement_id (as SQL expressions)."""
    entity_type, operation, user, service, ts, db_user, statement = columns
    parts = [_text(entity_type), _text(operation), _text(user), _text(service)]
    parts += [f"coalesce({ts}::text, '-')", _text(db_user), f"coalesce({statement}::text, '-')"]
    return " || '|' || ".join(["''", *parts])


def _row_hash(*columns: str) -> str:
    """id, entity_id, correlation_id, old_values, new_values, details, then ``_suffix``."""
    id_, entity_id, correlation, old, new, details, suffix = columns
    fields = [id_, entity_id, correlation, old, new, details]
    line = ", '|', ".join(f"coalesce({f}::text, '-')" for f in fields)
    return f"pg_catalog.sha256(pg_catalog.convert_to(concat({line}, {suffix}), 'UTF8'))"


_ROW_HASH_OF_ARGS = _row_hash(
    "p_id", "p_entity_id", "p_correlation", "p_old", "p_new", "p_details",
    _suffix("p_entity_type", "p_operation", "p_user", "p_service", "p_ts", "p_db_user",
            "p_statement"),
)  # fmt: skip
ROW_HASH = f"""
CREATE FUNCTION public.audit_row_hash(
    p_id uuid, p_entity_type text, p_entity_id uuid, p_operation text, p_old jsonb,
    p_new jsonb, p_correlation uuid, p_user text, p_service text, p_ts timestamp,
    p_details jsonb, p_db_user text, p_statement bigint
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT {_ROW_HASH_OF_ARGS}
$$;
"""

# Who the row says acted: the claimed label (a service name) unless it claims a CLI
# operator, which is always the database login itself.
OPERATOR = """
CREATE FUNCTION public.audit_operator(p_claimed text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN p_claimed IS NULL OR p_claimed = '' THEN NULL
        WHEN p_claimed = 'cli' OR p_claimed LIKE 'cli:%' THEN 'cli:' || session_user
        ELSE pg_catalog.left(p_claimed, 100)
    END
$$;
"""

# The INSERT of a statement's audit rows and its pending seal, one SQL statement.
# {changes} yields entity_id, old_values, new_values, correlation_id, details.
_WRITE_ROWS = (
    """
        WITH ins AS (
            INSERT INTO public.audit_log (id, entity_type, entity_id, operation, old_values,
                new_values, correlation_id, user_id, service_name, "timestamp", details,
                db_user, statement_id, row_hash)
            SELECT r.id, {entity_type}, r.entity_id, {operation}, r.old_values, r.new_values,
                   r.correlation_id, tx_user, {service}, stamp, r.details, login, sid,
                   """
    + _row_hash(
        "r.id",
        "r.entity_id",
        "r.correlation_id",
        "r.old_values",
        "r.new_values",
        "r.details",
        "line_tail",
    )
    + """
            FROM (SELECT (id_head || lpad(to_hex(row_number() OVER ()), 8, '0'))::uuid AS id,
                         c.*
                  FROM ({changes}) c OFFSET 0) r
            RETURNING id, row_hash
        )
        INSERT INTO public.audit_pending_seals (statement_id, day, row_count, digest)
        SELECT sid, stamp::date, count(*)::integer,
               pg_catalog.sha256(pg_catalog.string_agg(i.row_hash, ''::bytea ORDER BY i.id))
        FROM ins i HAVING count(*) > 0;
"""
)

_INSERTED = """
            SELECT d.id AS entity_id, NULL::jsonb AS old_values,
                   d.doc - excluded AS new_values,
                   COALESCE((d.doc ->> 'correlation_id')::uuid, tx_correlation)
                       AS correlation_id,
                   NULL::jsonb AS details
            FROM (SELECT n.id, to_jsonb(n) AS doc FROM new_rows n OFFSET 0) d"""

_UPDATED = """
            SELECT j.id AS entity_id, j.old_doc - excluded AS old_values,
                   j.new_doc - excluded AS new_values,
                   COALESCE(tx_correlation, (j.new_doc ->> 'correlation_id')::uuid)
                       AS correlation_id,
                   CASE WHEN cardinality(excluded) > 0 THEN (
                       SELECT jsonb_build_object('changed', jsonb_agg(k ORDER BY k))
                       FROM unnest(excluded) k
                       WHERE (j.old_doc -> k) IS DISTINCT FROM (j.new_doc -> k)
                       HAVING count(*) > 0) END AS details
            FROM (SELECT n.id, to_jsonb(o) AS old_doc, to_jsonb(n) AS new_doc
                  FROM new_rows n JOIN old_rows o ON o.id = n.id OFFSET 0) j
            WHERE (j.new_doc - 'updated_at') IS DISTINCT FROM (j.old_doc - 'updated_at')"""

_DELETED = """
            SELECT d.id AS entity_id, d.doc - excluded AS old_values,
                   NULL::jsonb AS new_values,
                   COALESCE(tx_correlation, (d.doc ->> 'correlation_id')::uuid)
                       AS correlation_id,
                   NULL::jsonb AS details
            FROM (SELECT o.id, to_jsonb(o) AS doc FROM old_rows o OFFSET 0) d"""


def _rows(changes: str) -> str:
    return _WRITE_ROWS.format(
        entity_type="TG_ARGV[0]::text",
        operation="TG_OP::text",
        service="TG_ARGV[1]::text",
        changes=changes,
    )


# Audit row ids: UUIDv7 (RFC 9562) with the statement's millisecond, then, in the 74 bits
# left, the statement id (40 bits) and the row's number in it (32 bits): unique, growing
# at the right edge of the indexes like uuid_generate_v7(), a third of its cost per row
# (no random bytes, one text-to-uuid per row; the head is built once per statement).
_ID_HEAD = (
    "(SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(s, 1, 3) || '-8' || "
    "substr(s, 4, 3) || '-' || substr(s, 7, 4) FROM (SELECT lpad(to_hex((extract(epoch FROM "
    "clock_timestamp()) * 1000)::bigint), 12, '0') AS h, right(lpad(to_hex(sid), 10, '0'), 10) "
    "AS s) v)"
)
_TRIGGER_TAIL = _suffix("TG_ARGV[0]", "TG_OP", "tx_user", "TG_ARGV[1]", "stamp", "login", "sid")
_RECORD_TAIL = _suffix(
    "p_entity_type", "p_operation", "tx_user", "p_service_name", "stamp", "login", "sid"
)

# audit_statement() v3: 0002's contract (one row per affected row, personal columns
# out), now for DELETE too, as the writer, sealed.
AUDIT_FUNCTION_V3 = f"""
CREATE OR REPLACE FUNCTION public.audit_statement() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    excluded text[] := COALESCE(NULLIF(TG_ARGV[2], '')::text[], '{{}}'::text[]);
    tx_correlation uuid := NULLIF(current_setting('app.correlation_id', true), '')::uuid;
    tx_user text := public.audit_operator(current_setting('app.user_id', true));
    login text := session_user;
    stamp timestamp := LOCALTIMESTAMP;
    sid bigint := nextval('public.audit_statement_seq');
    id_head text := {_ID_HEAD};
    line_tail text := {_TRIGGER_TAIL};
BEGIN
    IF TG_OP = 'INSERT' THEN
{_rows(_INSERTED)}
    ELSIF TG_OP = 'UPDATE' THEN
{_rows(_UPDATED)}
    ELSIF TG_OP = 'DELETE' THEN
{_rows(_DELETED)}
    END IF;
    RETURN NULL;
END;
$fn$;
"""

# One audit row written by application code (a run's summary, an erasure, an import):
# who and when are the database's, never the caller's.
_ONE_ROW = """
            SELECT p_entity_id AS entity_id, NULL::jsonb AS old_values,
                   NULL::jsonb AS new_values,
                   COALESCE(p_correlation_id, tx_correlation) AS correlation_id,
                   p_details AS details"""

_RECORD_ROW = _WRITE_ROWS.format(
    entity_type="p_entity_type", operation="p_operation", service="p_service_name", changes=_ONE_ROW
)

RECORD_FUNCTION = f"""
CREATE FUNCTION public.audit_record(
    p_entity_type text, p_entity_id uuid, p_operation text, p_service_name text,
    p_details jsonb, p_correlation_id uuid DEFAULT NULL, p_user_id text DEFAULT NULL
) RETURNS void LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    tx_correlation uuid := NULLIF(current_setting('app.correlation_id', true), '')::uuid;
    tx_user text := public.audit_operator(
        COALESCE(p_user_id, current_setting('app.user_id', true)));
    login text := session_user;
    stamp timestamp := LOCALTIMESTAMP;
    sid bigint := nextval('public.audit_statement_seq');
    id_head text := {_ID_HEAD};
    line_tail text := {_RECORD_TAIL};
BEGIN
{_RECORD_ROW}
END;
$fn$;
"""

# At commit (deferred): chain each pending statement digest into its day. The advisory
# lock serialises only this short tail; the previous seal read after taking it is
# committed (READ COMMITTED: a fresh snapshot per statement).
SEAL_FUNCTION = f"""
CREATE FUNCTION public.audit_seal_pending() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    last_seq bigint;
    last_seal bytea;
BEGIN
    PERFORM pg_advisory_xact_lock({SEAL_LOCK_CLASS}, NEW.day - DATE '2000-01-01');
    SELECT s.seq, s.seal INTO last_seq, last_seal
    FROM public.audit_seals s WHERE s.day = NEW.day ORDER BY s.seq DESC LIMIT 1;
    IF last_seq IS NULL THEN
        last_seq := 0;
        last_seal := sha256(convert_to(
            'premium-notify audit chain ' || to_char(NEW.day, 'YYYY-MM-DD'), 'UTF8'));
    END IF;
    INSERT INTO public.audit_seals (day, seq, statement_id, row_count, digest, prev_seal,
                                    seal, db_user)
    VALUES (NEW.day, last_seq + 1, NEW.statement_id, NEW.row_count, NEW.digest, last_seal,
            sha256(last_seal || int8send(last_seq + 1) || NEW.digest), session_user);
    DELETE FROM public.audit_pending_seals WHERE statement_id = NEW.statement_id;
    RETURN NULL;
END;
$fn$;
"""

# Retention: copy rows to the archive, then delete from audit_log only rows the archive
# holds with the same hash and seal. Nothing leaves the trail; it only moves.
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

# GDPR erasure: rewrite one row's JSON. The row keeps its sealed hash; a REDACT row
# (itself sealed) records the hash of the new content, which `audit verify` accepts.
REDACT_FUNCTION = f"""
CREATE FUNCTION public.audit_redact(
    p_table text, p_id uuid, p_old jsonb, p_new jsonb, p_details jsonb
) RETURNS integer LANGUAGE plpgsql SECURITY DEFINER {PIN} AS $fn$
DECLARE
    content bytea;
BEGIN
    IF p_table = 'audit_log' THEN
        UPDATE public.audit_log a SET old_values = p_old, new_values = p_new,
            details = p_details WHERE a.id = p_id
        RETURNING public.audit_row_hash(a.id, a.entity_type, a.entity_id, a.operation,
            a.old_values, a.new_values, a.correlation_id, a.user_id, a.service_name,
            a."timestamp", a.details, a.db_user, a.statement_id) INTO content;
    ELSIF p_table = 'audit_log_archive' THEN
        UPDATE public.audit_log_archive a SET old_values = p_old, new_values = p_new,
            details = p_details WHERE a.id = p_id
        RETURNING public.audit_row_hash(a.id, a.entity_type, a.entity_id, a.operation,
            a.old_values, a.new_values, a.correlation_id, a.user_id, a.service_name,
            a."timestamp", a.details, a.db_user, a.statement_id) INTO content;
    ELSE
        RAISE EXCEPTION 'not an audit table: %', p_table USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF content IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM public.audit_record('AuditLog', p_id, 'REDACT', 'AuditRedaction',
        jsonb_build_object('table', p_table, 'content_hash', encode(content, 'hex')));
    RETURN 1;
END;
$fn$;
"""

# Append-only, with no switch: only the writer's own functions may UPDATE or DELETE
# (current_user is the definer inside them). SECURITY INVOKER on purpose: as a definer
# it would always see the writer as current_user.
APPEND_ONLY_V3 = """
CREATE OR REPLACE FUNCTION public.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'TRUNCATE' AND current_user = 'pn_audit_writer' THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

# 0003 and 0008's append-only functions honoured the same setting: no longer.
OTHER_APPEND_ONLY = ("callback_receipts", "customer_opt_outs")
_NO_BYPASS = """
CREATE OR REPLACE FUNCTION public.{table}_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    RAISE EXCEPTION '{table} is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""
_GUC_BYPASS = """
CREATE OR REPLACE FUNCTION public.{table}_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    IF coalesce(current_setting('app.audit_maintenance', true), '') = 'on' THEN
        RETURN COALESCE(OLD, NEW);
    END IF;
    RAISE EXCEPTION '{table} is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""

ARCHIVE_NO_DELETE = """
CREATE FUNCTION public.archive_no_delete() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

DEFINER_FUNCTIONS = (
    "public.audit_statement()",
    "public.audit_record(text, uuid, text, text, jsonb, uuid, text)",
    "public.audit_seal_pending()",
    "public.audit_archive(uuid[])",
    "public.audit_retire(uuid[])",
    "public.audit_redact(text, uuid, jsonb, jsonb, jsonb)",
)

# (table, entity_type, service_name, columns kept out of the JSON)
NEW_AUDITED = (
    (
        "customers",
        "Customer",
        "CustomerService",
        "{first_name,last_name,email,phone_number,phone_raw,email_raw}",
    ),
    ("delivery_status", "DeliveryStatus", "DeliveryTracker", "{}"),
)
# Tables audited since 0001/0008, which now get a DELETE trigger too.
DELETE_AUDITED = (
    ("daily_balance_checks", "BalanceCheck", "BalanceMonitor", "{}"),
    ("monthly_qualifications", "Qualification", "QualificationEngine", "{}"),
    ("notifications", "Notification", "NotificationService", "{phone_number,sms_content}"),
    ("customer_opt_outs", "CustomerOptOut", "CampaignControls", "{}"),
    ("sms_controls", "SmsControl", "CampaignControls", "{}"),
)


def _trigger(table: str, event: str, args: str) -> str:
    referencing = {
        "insert": "REFERENCING NEW TABLE AS new_rows",
        "update": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
        "delete": "REFERENCING OLD TABLE AS old_rows",
    }[event]
    return (
        f"CREATE TRIGGER {table}_audit_{event} AFTER {event.upper()} ON public.{table} "
        f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION public.audit_statement({args})"
    )


def _audit_triggers() -> list[tuple[str, str]]:
    """(table, create statement) of every audit trigger this migration adds."""
    out = []
    for table, entity, service, excluded in NEW_AUDITED:
        args = f"'{entity}', '{service}', '{excluded}'"
        for event in ("insert", "update", "delete"):
            out.append((table, _trigger(table, event, args)))
    for table, entity, service, excluded in DELETE_AUDITED:
        out.append((table, _trigger(table, "delete", f"'{entity}', '{service}', '{excluded}'")))
    return out


def _guard_triggers() -> list[str]:
    sql = []
    for table in ("audit_log_archive", "audit_seals", "audit_pending_seals"):
        sql.append(
            f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON public.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.audit_log_append_only()"
        )
    for table in ("audit_log_archive", "audit_seals", "audit_pending_seals"):
        sql.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON public.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.audit_log_append_only()"
        )
    for table in OTHER_ARCHIVES:
        sql.append(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON public.{table} "
            "FOR EACH ROW EXECUTE FUNCTION public.archive_no_delete()"
        )
        sql.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON public.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.archive_no_delete()"
        )
    sql.append(
        "CREATE CONSTRAINT TRIGGER audit_pending_seal AFTER INSERT ON public.audit_pending_seals "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.audit_seal_pending()"
    )
    return sql


def upgrade() -> None:
    op.execute(CREATE_WRITER)
    for table in AUDIT_TABLES:
        op.execute(
            f"ALTER TABLE public.{table} ADD COLUMN db_user varchar(63), "
            "ADD COLUMN statement_id bigint, ADD COLUMN row_hash bytea"
        )
    op.execute(TABLES)
    op.execute(ROW_HASH)
    op.execute(OPERATOR)
    op.execute(AUDIT_FUNCTION_V3)
    op.execute(RECORD_FUNCTION)
    op.execute(SEAL_FUNCTION)
    op.execute(ARCHIVE_FUNCTIONS)
    op.execute(REDACT_FUNCTION)
    op.execute(APPEND_ONLY_V3)
    op.execute(ARCHIVE_NO_DELETE)
    for table in OTHER_APPEND_ONLY:
        op.execute(_NO_BYPASS.format(table=table))
    # The writer: exactly what its functions do, nothing else.
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON public.audit_log, public.audit_log_archive, "
        f"public.audit_pending_seals TO {WRITER}"
    )
    op.execute(f"GRANT SELECT, INSERT ON public.audit_seals TO {WRITER}")
    op.execute(f"GRANT USAGE ON SEQUENCE public.audit_statement_seq TO {WRITER}")
    op.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {WRITER}")
    for function in DEFINER_FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"ALTER FUNCTION {function} OWNER TO {WRITER}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {WRITER}")
    for _, statement in _audit_triggers():
        op.execute(statement)
    for statement in _guard_triggers():
        op.execute(statement)


# --- downgrade: 0002's audit_statement() and 0001's append-only function -------------

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

APPEND_ONLY_V1 = r"""
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


def downgrade() -> None:
    for table, statement in _audit_triggers():
        name = statement.split()[2]
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON public.{table}")
    for table in ("audit_log_archive", *OTHER_ARCHIVES):
        for suffix in ("no_update_delete", "no_delete", "no_truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{suffix} ON public.{table}")
    op.execute("ALTER FUNCTION public.audit_statement() OWNER TO CURRENT_USER")
    op.execute("GRANT EXECUTE ON FUNCTION public.audit_statement() TO PUBLIC")
    op.execute(AUDIT_FUNCTION_V2)  # CREATE OR REPLACE: invoker again, no SET
    op.execute(APPEND_ONLY_V1)
    for table in OTHER_APPEND_ONLY:
        op.execute(_GUC_BYPASS.format(table=table))
    op.execute("DROP TABLE public.audit_seals, public.audit_pending_seals")
    op.execute("DROP SEQUENCE public.audit_statement_seq")
    for function in DEFINER_FUNCTIONS[1:]:
        op.execute(f"DROP FUNCTION {function}")
    op.execute("DROP FUNCTION public.archive_no_delete()")
    op.execute("DROP FUNCTION public.audit_operator(text)")
    op.execute(
        "DROP FUNCTION public.audit_row_hash(uuid, text, uuid, text, jsonb, jsonb, uuid, text, "
        "text, timestamp, jsonb, text, bigint)"
    )
    for table in AUDIT_TABLES:
        op.execute(
            f"ALTER TABLE public.{table} DROP COLUMN db_user, DROP COLUMN statement_id, "
            "DROP COLUMN row_hash"
        )
    op.execute(f"REVOKE ALL ON public.audit_log, public.audit_log_archive FROM {WRITER}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {WRITER}")
    # The role is cluster wide: other databases may still use it.
    op.execute(
        f"DO $$ BEGIN DROP ROLE {WRITER}; "
        "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"
    )
