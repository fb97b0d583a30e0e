"""Benchmark of the monthly partitions: ./scripts/bench partitions [--customers N]
[--size-customers M] [--months 25] [--audit-hot-days 730]

On a private PostgreSQL 15 cluster, in the same run:

1. Monthly qualification with one month of checks in the table (the reference) and with
   13 months (12 older months loaded beside it): the deciding query alone
   (EXPLAIN ANALYZE, best of 3) and the whole run (``run_month``, best of 2).
   Target: <= 1.1x.
2. Database size over ``--months`` simulated months at a fixed customer count: each
   month's checks and audit rows are loaded, then a retention run (the month after, to
   a local cold store) retires what is past its hot period. Printed per month: the
   partitions kept and the bytes of checks, audit log and the whole database. The
   simulated months end with the current one (the database measures its retention
   horizons on its own clock). The checks stay flat after month 13 (hot year + current);
   the audit log after its own hot period (the seed's two years, RETENTION_AUDIT_HOT_DAYS
   730 days by default: month 25), and with it the database.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, datetime
from datetime import time as day_time
from pathlib import Path

from _bench_lifecycle import cluster, connect, load_customers, load_month, use_engine
from _common import Connection, scalar
from bench_qualification import best_of, explain_ms

from app.db import session as db_session
from app.maintenance import retention
from app.maintenance.cold_store import ColdStore
from app.maintenance.partitions import ensure_range, months_between
from app.months import Month
from app.qualification.repository.decisions import DECIDE_SQL

QUALIFIED_MONTH = Month(2025, 12)


def _decide_ms(conn: Connection, month: Month) -> float:
    sql = (
        DECIDE_SQL.replace(":first", "%(first)s")
        .replace(":next_first", "%(next_first)s")
        .replace(":total_days", "%(total_days)s")
    )
    params = {"first": month.first, "next_first": month.next_first, "total_days": month.days}
    return best_of(3, lambda: explain_ms(conn, sql, params, None))


def _run_ms(conn: Connection, month: Month) -> float:
    from app.qualification.service import run_month

    conn.cursor().execute("TRUNCATE monthly_qualifications CASCADE")
    t = time.perf_counter()
    run_month(db_session.session_scope, month, gap_repair=None, triggered_by="bench")
    return (time.perf_counter() - t) * 1000


def qualification(url: str, customers: int) -> None:
    conn = connect(url)
    use_engine(url)
    first = Month(2024, 12)
    with db_session.session_scope() as s:
        ensure_range(s, first, QUALIFIED_MONTH)
    load_customers(conn, customers)
    print(f"qualification: {customers:,} customers, {QUALIFIED_MONTH} ...", flush=True)
    load_month(conn, QUALIFIED_MONTH.first, QUALIFIED_MONTH.days, audit=False)
    one = (_decide_ms(conn, QUALIFIED_MONTH), best_of(2, lambda: _run_ms(conn, QUALIFIED_MONTH)))
    print("  loading the 12 months before it ...", flush=True)
    for month in months_between(first, Month(2025, 11)):
        load_month(conn, month.first, month.days, audit=False)
    conn.cursor().execute("VACUUM ANALYZE daily_balance_checks")
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM daily_balance_checks")
    rows = scalar(cur)
    thirteen = (
        _decide_ms(conn, QUALIFIED_MONTH),
        best_of(2, lambda: _run_ms(conn, QUALIFIED_MONTH)),
    )
    print()
    print(f"results: qualification of {QUALIFIED_MONTH}, {customers:,} customers")
    print(f"  {'':<40} {'1 month (ref)':>14} {'13 months':>12} {'ratio':>8}  target <= 1.1x")
    for label, a, b in (
        ("deciding query (EXPLAIN ANALYZE)", one[0], thirteen[0]),
        ("whole run (run_month)", one[1], thirteen[1]),
    ):
        print(f"  {label:<40} {a / 1000:>12.2f} s {b / 1000:>10.2f} s {b / a:>7.3f}x")
    print(f"  checks in the table: {customers * QUALIFIED_MONTH.days:,} vs {rows:,}")
    conn.close()
    db_session.set_engine(None)


def _sizes(conn: Connection) -> tuple[int, int, int, int]:
    cur = conn.cursor()
    out = []
    for table in ("daily_balance_checks", "audit_log"):
        cur.execute(
            "SELECT count(*), COALESCE(sum(pg_total_relation_size(inhrelid)), 0) "
            "FROM pg_inherits WHERE inhparent = %s::regclass",
            (table,),
        )
        count, size = cur.fetchone() or (0, 0)
        out += [int(count), int(size)]
    return out[0], out[1], out[2], out[3]


def db_size(url: str, customers: int, months: int, audit_hot_days: int, cold: Path) -> None:
    conn = connect(url)
    use_engine(url)
    load_customers(conn, customers)
    store = ColdStore(str(cold))
    policy = retention.Policy(audit_hot_days=audit_hot_days)
    # The database refuses to retire a month inside its horizon on its own clock: the
    # simulated months end with the current one (the last "as of" is its first day).
    first = Month.of(date.today())
    for _ in range(months):
        first = first.previous()
    print()
    print(
        f"results: database size, {customers:,} customers, {months} months "
        f"(audit hot {audit_hot_days} days)"
    )
    print(
        f"  {'month':>5} {'as of':>10} {'checks parts':>12} {'checks MiB':>11} "
        f"{'audit parts':>11} {'audit MiB':>10} {'database MiB':>13}"
    )
    month = first
    for i in range(1, months + 1):
        with db_session.session_scope() as s:
            ensure_range(s, month, month)
        load_month(conn, month.first, month.days)
        today = month.next_first
        retention.run(
            db_session.session_scope,
            policy=policy,
            store=store,
            today_local=today,
            now_utc=datetime.combine(today, day_time(4, 30)),
            triggered_by="bench",
        )
        conn.cursor().execute("VACUUM")
        parts, checks, audit_parts, audit = _sizes(conn)
        cur = conn.cursor()
        cur.execute("SELECT pg_database_size(current_database())")
        total = scalar(cur)
        print(
            f"  {i:>5} {today.isoformat():>10} {parts:>12} {checks / 2**20:>11.1f} "
            f"{audit_parts:>11} {audit / 2**20:>10.1f} {total / 2**20:>13.1f}",
            flush=True,
        )
        month = Month.of(month.next_first)
    conn.close()
    db_session.set_engine(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200_000, help="qualification part")
    parser.add_argument("--size-customers", type=int, default=10_000, help="size part")
    parser.add_argument("--months", type=int, default=25)
    parser.add_argument("--audit-hot-days", type=int, default=730)
    parser.add_argument("--skip", choices=["qualification", "size"], default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pn-bench-partitions-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # the clusters run as their own OS user
        if args.skip != "qualification":
            with cluster(work / "pg-q") as url:
                qualification(url, args.customers)
        if args.skip != "size":
            with cluster(work / "pg-s") as url:
                db_size(url, args.size_customers, args.months, args.audit_hot_days, work / "cold")


if __name__ == "__main__":
    main()
