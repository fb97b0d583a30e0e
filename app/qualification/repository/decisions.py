"""The set-based qualification statements (docs/design.md decisions 4 and 6).

One set-based statement decides the whole month and one writes it (no per-customer
loop): the month's checks are aggregated per customer first (a sargable ``check_date``
range, read once), then joined to the 1-row-per-customer ``customers`` table for the
stored phone verdict and the active flag. The seed's query (section 6.1) instead
filters with EXTRACT, joins 30 rows per customer before grouping, and counts only the
days that were checked.

``count(*)`` is the number of distinct days because (customer_id, check_date) is UNIQUE
(decision 3). Results are immutable: ``ON CONFLICT DO NOTHING``; ``recompute`` changes
only rows that have no notification yet. The counting statements return one row of
counts (``rows``, ``qualified``, one column per reason); ``app.qualification.engine``
reads it as a ``Tally``. The caller owns the transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from app.months import Month
from app.qualification.months import REASON_ORDER

# pg_advisory_xact_lock(class, month): 'QUAL' in ASCII. Anything that must not interleave
# with a month's qualification (e.g. preparing its notifications) may take the same lock.
LOCK_CLASS = 0x5155414C

_DAYS_CTE = """
    days AS (
        SELECT customer_id,
               count(*) AS checked_days,
               count(*) FILTER (WHERE passes_threshold) AS qualifying_days
        FROM daily_balance_checks
        WHERE check_date >= :first AND check_date < :next_first
        GROUP BY customer_id
    )
"""

# The rule, as SQL over days d JOIN customers c. NULL is_active counts as not active
# (the seed's own query keeps only is_active = TRUE).
_DECISION = """
    (c.is_active IS TRUE AND d.qualifying_days = :total_days
        AND c.phone_is_valid_mobile) AS qualified,
    d.qualifying_days::int AS qualifying_days,
    CAST(:total_days AS int) AS total_days_in_month,
    NULLIF(concat_ws(',',
        CASE WHEN c.is_active IS NOT TRUE THEN 'INACTIVE' END,
        CASE WHEN d.checked_days < :total_days THEN 'MISSING_DATA' END,
        CASE WHEN d.qualifying_days < d.checked_days THEN 'BELOW_THRESHOLD' END,
        CASE WHEN NOT c.phone_is_valid_mobile THEN 'INVALID_PHONE' END
    ), '') AS disqualification_reason,
    c.phone_is_valid_mobile AS phone_number_validated
"""

_DECIDED_ROWS = f"""
    SELECT d.customer_id, {_DECISION}
    FROM days d JOIN customers c ON c.id = d.customer_id
"""
DECIDE_SQL = f"WITH {_DAYS_CTE} {_DECIDED_ROWS}"


def _counts(alias: str) -> str:
    reasons = ",\n".join(
        f"count(*) FILTER (WHERE {alias}.disqualification_reason LIKE '%{r}%') AS {r.lower()}"
        for r in REASON_ORDER
    )
    return f"count(*) AS rows, count(*) FILTER (WHERE {alias}.qualified) AS qualified, {reasons}"


# Deciding and writing are two statements in one transaction: PostgreSQL runs no part
# of an INSERT ... SELECT in parallel, but it does run CREATE TABLE AS in parallel, and
# the aggregate over the month's checks is most of the deciding. The decisions go to a
# table private to the transaction (dropped at its commit or rollback), then one INSERT
# writes them. Measured: docs/qualification.md (benchmark).
_DECIDED = "qualification_decided"
_DECIDE_INTO = text(
    f"""
    CREATE TEMPORARY TABLE {_DECIDED} ON COMMIT DROP AS {DECIDE_SQL}
    -- One anti-join instead of a conflict probe per existing row makes re-runs cheap.
    WHERE NOT EXISTS (
        SELECT 1 FROM monthly_qualifications mq
        WHERE mq.customer_id = d.customer_id AND mq.qualification_month = :first)
    """
)
_INSERT = text(
    f"""
    WITH written AS (
        INSERT INTO monthly_qualifications
            (customer_id, qualification_month, qualified, qualifying_days,
             total_days_in_month, disqualification_reason, phone_number_validated,
             calculated_at, correlation_id)
        SELECT x.customer_id, CAST(:first AS date), x.qualified, x.qualifying_days,
               x.total_days_in_month, x.disqualification_reason, x.phone_number_validated,
               LOCALTIMESTAMP, CAST(:correlation_id AS uuid)
        FROM {_DECIDED} x
        -- In key order, the UNIQUE (customer_id, qualification_month) index and the
        -- foreign-key probes walk their btrees leaf by leaf instead of at random.
        ORDER BY x.customer_id
        -- The month's advisory lock already serialises writers; this settles any race.
        ON CONFLICT (customer_id, qualification_month) DO NOTHING
        RETURNING qualified, disqualification_reason
    )
    SELECT {_counts("written")} FROM written
    """
)

# Only rows whose decision really changes are touched (the audit trigger then logs old
# and new values for exactly those), and never a row a notification already refers to.
_RECOMPUTE = text(
    f"""
    WITH {_DAYS_CTE},
    decided AS ({_DECIDED_ROWS}),
    changed AS (
        UPDATE monthly_qualifications mq
        SET qualified = x.qualified,
            qualifying_days = x.qualifying_days,
            total_days_in_month = x.total_days_in_month,
            disqualification_reason = x.disqualification_reason,
            phone_number_validated = x.phone_number_validated,
            calculated_at = LOCALTIMESTAMP,
            correlation_id = CAST(:correlation_id AS uuid)
        FROM decided x
        WHERE mq.customer_id = x.customer_id
          AND mq.qualification_month = :first
          AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.qualification_id = mq.id)
          AND (mq.qualified, mq.qualifying_days, mq.total_days_in_month,
               mq.disqualification_reason, mq.phone_number_validated)
              IS DISTINCT FROM
              (x.qualified, x.qualifying_days, x.total_days_in_month,
               x.disqualification_reason, x.phone_number_validated)
        RETURNING mq.qualified, mq.disqualification_reason
    )
    SELECT {_counts("changed")} FROM changed
    """
)

_MONTH_TOTALS = text(
    f"""
    SELECT {_counts("mq")}, count(n.qualification_id) AS notified
    FROM monthly_qualifications mq
    -- A join, not EXISTS per row: notifications.qualification_id is UNIQUE.
    LEFT JOIN notifications n ON n.qualification_id = mq.id
    WHERE mq.qualification_month = :first
    """
)


def _params(month: Month, correlation_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "first": month.first,
        "next_first": month.next_first,
        "total_days": month.days,
        "correlation_id": str(correlation_id) if correlation_id else None,
    }


def lock_month(session: Session, month: Month) -> None:
    """Wait for, then hold until the transaction ends, the month's advisory lock."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key)"),
        {"cls": LOCK_CLASS, "key": month.lock_key},
    )


def set_work_mem(session: Session, work_mem: str) -> None:
    """``work_mem`` for the rest of the transaction."""
    session.execute(text("SELECT set_config('work_mem', :wm, true)"), {"wm": work_mem})


def insert_month(session: Session, month: Month, correlation_id: uuid.UUID) -> dict[str, Any]:
    """Decide and write every evaluated customer that has no row for the month yet.

    Returns the counts of the rows written.
    """
    params = _params(month, correlation_id)
    session.execute(text(f"DROP TABLE IF EXISTS pg_temp.{_DECIDED}"))
    session.execute(_DECIDE_INTO, params)
    return dict(session.execute(_INSERT, params).one()._mapping)


def recompute_month(session: Session, month: Month, correlation_id: uuid.UUID) -> dict[str, Any]:
    """Re-decide existing rows that no notification refers to; counts of the changed ones.

    ``notifications`` is locked against inserts for the rest of the transaction, so the
    notification stage cannot attach an SMS to a row while its decision is rewritten.
    """
    session.execute(text("LOCK TABLE notifications IN SHARE MODE"))
    return dict(session.execute(_RECOMPUTE, _params(month, correlation_id)).one()._mapping)


def month_totals(session: Session, month: Month) -> dict[str, Any]:
    """Counts over all of the month's qualification rows (and ``notified``)."""
    return dict(session.execute(_MONTH_TOTALS, {"first": month.first}).one()._mapping)


def explain_decide(session: Session, month: Month) -> Any:
    """EXPLAIN (FORMAT JSON) of the deciding query (tests check it reads checks once)."""
    return session.execute(text(f"EXPLAIN (FORMAT JSON) {DECIDE_SQL}"), _params(month)).scalar_one()
