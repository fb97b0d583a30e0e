"""Benchmark of monthly qualification: ./scripts/bench qualification [--customers N]

On a dedicated database (created here, dropped afterwards) it loads N customers x the
days of one 30-day month of checks (generate_series, audit trigger and secondary indexes
off for the load only, rebuilt after), then times, on the same data in the same run:

  1. the seed's bare aggregate SELECT (data architecture section 6.1, its month),
  2. the project's deciding query alone (app.qualification.repository.decisions.DECIDE_SQL),
  3. the whole qualification run (phone check, decide, write, audit, bookkeeping),

and prints each beside the seed's SELECT with the ratio. Targets: 2 <= 0.5x, 3 <= 3x.
Queries are timed server-side with EXPLAIN (ANALYZE, TIMING OFF), so neither pays for
shipping a million rows to Python; the seed's query is timed with the default work_mem
(as written: the seed sets nothing) and with the run's. The faster of the two is the
reference ("x seed", the stricter); the ratio to the seed as written is printed beside.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

from _common import Connection, admin, connect, database_url, drop, migrate, recreate, scalar

from app.db import session as db_session

DB = "pn_bench_qualification"

SEED_SELECT = """
SELECT
    c.id,
    c.phone_number,
    COUNT(dbc.id) FILTER (WHERE dbc.passes_threshold = TRUE)
        AS qualifying_days,
    COUNT(dbc.id) AS total_days,
    COUNT(dbc.id) FILTER (WHERE dbc.passes_threshold = TRUE) = COUNT(dbc.id)
        AS qualified
FROM customers c
LEFT JOIN daily_balance_checks dbc
    ON c.id = dbc.customer_id
    AND EXTRACT(YEAR FROM dbc.check_date) = {year}
    AND EXTRACT(MONTH FROM dbc.check_date) = {month}
WHERE c.is_active = TRUE
GROUP BY c.id, c.phone_number
HAVING COUNT(dbc.id) > 0
"""


def step(label: str) -> float:
    print(f"  {label} ...", flush=True)
    return time.perf_counter()


def load(conn: Connection, customers: int, first: str, days: int) -> None:
    cur = conn.cursor()
    t = step(f"customers: {customers:,}")
    # 2% inactive, 1% landline (its verdict stored: NOT_MOBILE), verdicts current.
    cur.execute(
        """
        INSERT INTO customers (account_number, first_name, last_name, phone_number,
                               is_active, phone_status, phone_is_valid_mobile, last_verified)
        SELECT 'B' || lpad(g::text, 9, '0'), 'Bench', 'Customer',
               CASE WHEN g %% 100 = 7 THEN '+97236123456'
                    ELSE '+97252' || lpad((g %% 10000000)::text, 7, '0') END,
               g %% 50 <> 3,
               CASE WHEN g %% 100 = 7 THEN 'NOT_MOBILE' ELSE 'MOBILE' END,
               g %% 100 <> 7,
               LOCALTIMESTAMP + interval '1 minute'
        FROM generate_series(1, %s) g
        """,
        (customers,),
    )
    print(f"    {time.perf_counter() - t:.1f} s")
    cur.execute(
        """SELECT indexname, indexdef FROM pg_indexes
           WHERE tablename = 'daily_balance_checks' AND indexname NOT LIKE '%%pkey'"""
    )
    indexes = cur.fetchall()
    cur.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = 'daily_balance_checks'::regclass "
        "AND contype = 'u'"
    )
    uniques = [r[0] for r in cur.fetchall()]
    indexes = [(name, definition) for name, definition in indexes if name not in uniques]
    for name in uniques:
        cur.execute(f"ALTER TABLE daily_balance_checks DROP CONSTRAINT {name}")
    for name, _ in indexes:
        cur.execute(f"DROP INDEX IF EXISTS {name}")
    t = step(f"checks: {customers * days:,} (audit trigger off for the load only)")
    # Per customer (by g % 100): 60 pass every day, 25 fail one day, 10 miss one day,
    # 5 fail several days. Balances vary per day.
    cur.execute("SET session_replication_role = replica")
    cur.execute(
        """
        INSERT INTO daily_balance_checks (customer_id, check_date, balance, threshold,
                                          passes_threshold, check_timestamp)
        SELECT c.id, d::date, b.balance, 15000, b.balance >= 15000,
               d + interval '20 hours'
        FROM (SELECT id, substr(account_number, 2)::int AS g FROM customers) c
        CROSS JOIN generate_series(%s::date, %s::date + (%s - 1), interval '1 day') d
        CROSS JOIN LATERAL (SELECT CASE
            WHEN c.g %% 100 < 60 THEN 15000 + (c.g * 7 + extract(day from d)::int * 13) %% 40000
            WHEN c.g %% 100 < 85 AND extract(day from d)::int = 1 + c.g %% %s THEN 14999.99
            WHEN c.g %% 100 >= 95 AND extract(day from d)::int %% 3 = 0 THEN -120.50
            ELSE 16000 + (c.g * 3) %% 9000 END::numeric(18, 2) AS balance) b
        WHERE NOT (c.g %% 100 BETWEEN 85 AND 94 AND extract(day from d)::int = 1 + c.g %% %s)
        """,
        (first, first, days, days, days),
    )
    cur.execute("SET session_replication_role = DEFAULT")
    print(f"    {time.perf_counter() - t:.1f} s")
    t = step("rebuild indexes and constraints, VACUUM ANALYZE")
    for name in uniques:
        cur.execute(
            f"ALTER TABLE daily_balance_checks ADD CONSTRAINT {name} "
            "UNIQUE (customer_id, check_date)"
        )
    for _, definition in indexes:
        cur.execute(definition)
    cur.execute("VACUUM ANALYZE customers")
    cur.execute("VACUUM ANALYZE daily_balance_checks")
    print(f"    {time.perf_counter() - t:.1f} s")


def loaded_customers(conn: Connection, url: str) -> int | None:
    """Customers in a kept bench database, None when there is none."""
    cur = conn.cursor()
    cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,))
    if cur.fetchone() is None:
        return None
    kept = connect(url)
    try:
        cur = kept.cursor()
        cur.execute("SELECT to_regclass('customers') IS NOT NULL")
        if not scalar(cur):
            return None
        cur.execute("SELECT count(*) FROM customers")
        return int(scalar(cur))
    finally:
        kept.close()


def explain_ms(
    conn: Connection, sql: str, params: dict[str, object], work_mem: str | None
) -> float:
    cur = conn.cursor()
    cur.execute("BEGIN")
    if work_mem:
        cur.execute("SELECT set_config('work_mem', %s, true)", (work_mem,))
    cur.execute("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) " + sql, params)
    plan = scalar(cur)
    cur.execute("ROLLBACK")
    return float(plan[0]["Execution Time"])


def best_of(n: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--month", default="2026-09", help="a closed 30-day month")
    parser.add_argument("--repeat", type=int, default=3, help="timings are best of N")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="time again on a database kept by --keep with the same --customers (add --keep "
        "to keep it again): skips the load and empties monthly_qualifications first "
        "(audit rows of earlier runs stay)",
    )
    args = parser.parse_args()

    from app.config import get_settings
    from app.months import Month
    from app.qualification.repository.decisions import DECIDE_SQL

    month = Month.parse(args.month)
    server = db_session.resolve_database_url()
    url = database_url(server, DB)
    work_mem = get_settings().qualification_work_mem
    print(
        f"qualification benchmark: {args.customers:,} customers x {month.days} days "
        f"({args.customers * month.days:,} checks), month {month}, work_mem {work_mem}"
    )

    conn = admin(server)
    reused = args.reuse and loaded_customers(conn, url) == args.customers
    if not reused:
        recreate(conn, DB)
    try:
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        migrate(url)
        bench = connect(url)
        if reused:
            # Emptied, not deleted from: the run then writes into fresh indexes, as the
            # first run did (a bench database holds no other month and no outbox).
            print("  reusing the kept database: monthly_qualifications emptied")
            cur = bench.cursor()
            cur.execute("TRUNCATE monthly_qualifications CASCADE")
            cur.execute("CHECKPOINT")
        else:
            load(bench, args.customers, month.first.isoformat(), month.days)

        seed_sql = SEED_SELECT.format(year=month.year, month=month.month)
        params = {
            "first": month.first,
            "next_first": month.next_first,
            "total_days": month.days,
            "correlation_id": None,
        }
        print(f"timing (best of {args.repeat}) ...", flush=True)
        seed_default = best_of(args.repeat, lambda: explain_ms(bench, seed_sql, {}, None))
        seed_tuned = best_of(args.repeat, lambda: explain_ms(bench, seed_sql, {}, work_mem))
        reference = min(seed_default, seed_tuned)
        decide = best_of(
            args.repeat,
            lambda: explain_ms(
                bench,
                DECIDE_SQL.replace(":first", "%(first)s")
                .replace(":next_first", "%(next_first)s")
                .replace(":total_days", "%(total_days)s"),
                params,
                work_mem,
            ),
        )

        engine = db_session.build_engine(url)
        db_session.set_engine(engine)
        from app.qualification.service import run_month

        t = time.perf_counter()
        result = run_month(db_session.session_scope, month, gap_repair=None, triggered_by="bench")
        whole = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        again = run_month(db_session.session_scope, month, gap_repair=None, triggered_by="bench")
        rerun = (time.perf_counter() - t) * 1000
        cur = bench.cursor()
        cur.execute(
            "SELECT count(*) FROM audit_log WHERE correlation_id = %s",
            (str(result.correlation_id),),
        )
        audited = scalar(cur)

        def line(label: str, ms: float) -> str:
            return (
                f"  {label:<52} {ms / 1000:8.2f} s   {ms / reference:5.2f}x seed"
                f"   ({ms / seed_default:5.2f}x seed as written)"
            )

        print()
        print(f"results ({args.customers:,} customers, {args.customers * month.days:,} checks):")
        print(line("seed SELECT 6.1 (default work_mem)", seed_default))
        print(line(f"seed SELECT 6.1 (work_mem {work_mem})", seed_tuned))
        print(line("deciding query alone            [target <= 0.5x]", decide))
        print(line("whole run: decide+write+audit   [target <= 3x]", whole))
        print(line("re-run (nothing new to write)", rerun))
        print(
            f"  seed claim: < 1 s per 100,000 customers -> "
            f"{args.customers / 100_000:.0f} s here; measured per 100,000: "
            f"seed {reference / 1000 / (args.customers / 100_000):.2f} s, "
            f"decide {decide / 1000 / (args.customers / 100_000):.2f} s"
        )
        print(
            "  run totals:",
            json.dumps(result.totals.as_dict()),
            f"audit rows: {audited:,}, re-run wrote {again.written.rows}",
        )
        db_session.set_engine(None)
        engine.dispose()
        bench.close()
    finally:
        if not args.keep:
            drop(conn, DB)
        conn.close()


if __name__ == "__main__":
    main()
