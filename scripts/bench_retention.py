"""Benchmark of retention by partition: ./scripts/bench retention [--customers N]

On a private PostgreSQL 15 cluster, one month (30 days) of N customers' checks plus one
audit row per check (N x 30 each: 6 M + 6 M at the issue's 200,000 customers) is retired
in the same run in two ways, each on the same freshly loaded data:

  reference: today's row moves (before issue 21): batches of 5,000 per transaction,
             SELECT ids FOR UPDATE SKIP LOCKED, INSERT into <table>_archive, count,
             DELETE, then the COPY export of the archived rows to CSV.gz;
  new:       retention by partition (app/maintenance/retention_units.retire_partition):
             COPY -> Parquet -> verified object -> manifest, then DETACH + DROP.

and, to show that dropping a month does not grow with its size, the drop transaction
alone (the partition frozen and its set in cold storage: frozen check, DETACH, DROP,
audit row) at N customers and at N/4. Database work is counted as the
client's statements, the WAL written (pg_current_wal_lsn difference) and seconds.

During each drop a reader on its own connection queries both partitioned tables every
2 ms; its longest wait is how long the drop kept the live tables locked. The drop's
seconds end when its COMMIT returns, and PostgreSQL removes the dropped files at commit
after the commit record is written and the locks are released: that file removal is the
filesystem freeing the month's blocks, the one part that follows the month's size, and
nobody waits for it (the reader's wait shows it).
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from _bench_lifecycle import (
    HEADER,
    Work,
    connect,
    load_customers,
    load_month,
    measure,
    row,
    use_engine,
)
from _bench_lifecycle import cluster as private_cluster
from _common import Connection, scalar

from app.db.session import session_scope
from app.maintenance import retention_units
from app.maintenance.cold_store import ColdStore
from app.maintenance.repository.partitions import Partition
from app.maintenance.repository.partitions import freeze as freeze_partition
from app.months import Month

MONTH = Month(2024, 1)
BATCH = 5000
TABLES = {
    "daily_balance_checks": "check_date < %(next)s",
    "audit_log": '"timestamp" < %(next)s',
}


def row_moves(conn: Connection, out: Path) -> None:
    """Today's algorithm (the retention job before issue 21), on the month's rows."""
    cur = conn.cursor()
    for table, predicate in TABLES.items():
        cur.execute(
            "SELECT string_agg(column_name, ', ' ORDER BY ordinal_position) FROM "
            "information_schema.columns WHERE table_name = %s",
            (table,),
        )
        columns = scalar(cur)
        while True:
            conn.autocommit = False
            cur.execute("SET LOCAL lock_timeout = '10s'")
            # Before issue 17 a setting opened the append-only trigger; migration 0010 has
            # no bypass, so the reference runs with the triggers out (superuser, as before
            # 0010 without its DELETE audit rows: the reference is not made dearer).
            cur.execute("SET LOCAL session_replication_role = replica")
            cur.execute(
                f"SELECT t.id FROM {table} t WHERE {predicate} ORDER BY t.id LIMIT %(n)s "
                "FOR UPDATE OF t SKIP LOCKED",
                {"next": MONTH.next_first, "n": BATCH},
            )
            ids = [r[0] for r in cur.fetchall()]
            if ids:
                cur.execute(
                    f"INSERT INTO {table}_archive ({columns}) SELECT {columns} FROM {table} "
                    "WHERE id = ANY(%s::uuid[]) ON CONFLICT (id) DO NOTHING",
                    (ids,),
                )
                cur.execute(
                    f"SELECT count(*) FROM {table}_archive WHERE id = ANY(%s::uuid[])", (ids,)
                )
                cur.execute(f"DELETE FROM {table} WHERE id = ANY(%s::uuid[])", (ids,))
            conn.commit()
            conn.autocommit = True
            if len(ids) < BATCH:
                break
        with gzip.open(out / f"{table}_archive.csv.gz", "wb", compresslevel=6) as gz:
            cur.copy_expert(
                f"COPY (SELECT * FROM {table}_archive ORDER BY archived_at, id) "
                "TO STDOUT WITH (FORMAT csv, HEADER true)",
                gz,
            )


def by_partition(ctx: retention_units.Context) -> None:
    for table in TABLES:
        years = 10 if table == "audit_log" else 7
        retention_units.retire_partition(ctx, Partition(table, MONTH), years)


def freeze(ctx: retention_units.Context) -> None:
    with ctx.transaction() as session:
        for table in TABLES:
            freeze_partition(session, Partition(table, MONTH))


def drop_only(ctx: retention_units.Context, rows: int) -> None:
    """The drop transaction alone (the month frozen, its set verified in cold storage)."""
    for table in TABLES:
        retention_units.drop_partition(ctx, Partition(table, MONTH), exported=rows)


class Reader:
    """Reads both partitioned tables every 2 ms (today's partitions, pruned at planning:
    a read needs the parent's lock, which DETACH takes) while the block runs; ``longest``
    is its longest wait in seconds."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg2.connect(url.replace("+psycopg2", ""))  # not the drop's work
        self.conn.autocommit = True
        self.stop = threading.Event()
        self.longest = 0.0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        day = now.date()
        with self.conn.cursor() as cur:
            while not self.stop.is_set():
                started = time.perf_counter()
                cur.execute(
                    "SELECT (SELECT 1 FROM daily_balance_checks WHERE check_date = %s LIMIT 1),"
                    ' (SELECT 1 FROM audit_log WHERE "timestamp" >= %s AND "timestamp" < %s'
                    " LIMIT 1)",
                    (day, now.replace(hour=0, minute=0), now.replace(hour=23, minute=59)),
                )
                cur.fetchall()
                self.longest = max(self.longest, time.perf_counter() - started)
                time.sleep(0.002)

    def __enter__(self) -> Reader:
        self.thread.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.05)
        self.stop.set()
        self.thread.join()
        self.conn.close()


def measure_drop(conn: Connection, url: str, fn: Callable[[], object]) -> tuple[Work, float]:
    """The drop's work, and the longest a concurrent reader of the tables waited."""
    with Reader(url) as reader:
        work = measure(conn, fn)
    return work, reader.longest


def fresh_month(conn: Connection) -> int:
    cur = conn.cursor()
    cur.execute("SET session_replication_role = replica")  # the archives' no-truncate guard
    for table in TABLES:
        cur.execute(f"TRUNCATE {table}_archive")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {table}_p{MONTH.year}{MONTH.month:02d} PARTITION OF "
            f"{table} FOR VALUES FROM ('{MONTH.first}') TO ('{MONTH.next_first}')"
        )
        cur.execute(f"TRUNCATE {table}_p{MONTH.year}{MONTH.month:02d}")
    cur.execute("SET session_replication_role = origin")
    return load_month(conn, MONTH.first, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pn-bench-retention-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # the cluster runs as its own OS user
        with private_cluster(work / "pg") as url:
            conn = connect(url)
            use_engine(url)
            results: dict[str, Work] = {}
            sizes: dict[str, int] = {}
            waits: dict[str, float] = {}
            store = ColdStore(str(work / "cold"))

            def ctx() -> retention_units.Context:
                return retention_units.Context(session_scope, store, "bench", uuid.uuid4(), "b")

            load_customers(conn, args.customers)
            print(f"loading one month for {args.customers:,} customers ...", flush=True)
            sizes["full"] = fresh_month(conn)
            print("  row moves (today) ...", flush=True)
            (work / "csv").mkdir()
            results["moves"] = measure(conn, lambda: row_moves(conn, work / "csv"))
            fresh_month(conn)
            print("  export + drop ...", flush=True)
            results["new"] = measure(conn, lambda: by_partition(ctx()))
            fresh_month(conn)  # the same rows again: their sets are in cold storage
            freeze(ctx())
            results["drop"], waits["full"] = measure_drop(
                conn, url, lambda: drop_only(ctx(), sizes["full"])
            )
            cur = conn.cursor()
            cur.execute(
                "DELETE FROM customers WHERE account_number > %s", (f"B{args.customers // 4:09d}",)
            )
            print("  a quarter of the month: export + drop, then drop alone ...", flush=True)
            sizes["quarter"] = fresh_month(conn)
            measure(conn, lambda: by_partition(ctx()))
            fresh_month(conn)
            freeze(ctx())
            results["drop_quarter"], waits["quarter"] = measure_drop(
                conn, url, lambda: drop_only(ctx(), sizes["quarter"])
            )
            _report(args.customers, sizes, results, waits)
            conn.close()


def _report(
    customers: int, sizes: dict[str, int], r: dict[str, Work], waits: dict[str, float]
) -> None:
    ref = r["moves"]
    print()
    print(
        f"results: one month, {customers:,} customers: {sizes['full']:,} checks + "
        f"{sizes['full']:,} audit rows (quarter: {sizes['quarter']:,} + {sizes['quarter']:,})"
    )
    print(HEADER)
    print(row("reference: row moves + CSV export (today)", ref, ref))
    print(row("partition export + verify + drop (new)", r["new"], ref))
    print(row("  drop alone, full month", r["drop"], ref))
    print(row("  drop alone, quarter month", r["drop_quarter"], ref))
    growth = r["drop"]
    small = r["drop_quarter"]
    print(
        f"  drop, full vs quarter month (4x the rows): statements {growth.statements} vs "
        f"{small.statements}, WAL {growth.wal_bytes:,} vs {small.wal_bytes:,} bytes, "
        f"{growth.seconds:.2f} vs {small.seconds:.2f} s"
    )
    print(
        f"  the live tables locked by the drop (a concurrent reader's longest wait): "
        f"{waits['full'] * 1000:.0f} vs {waits['quarter'] * 1000:.0f} ms; the rest of the "
        "seconds is the files' removal after COMMIT released the locks (the filesystem "
        "freeing the month's blocks)"
    )


if __name__ == "__main__":
    main()
