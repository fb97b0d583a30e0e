"""Recovery drill, scenario (b): the primary dies mid-run, the streaming standby takes over.

A primary (archiving WAL as production does) and a synchronous streaming standby; a real
Dramatiq worker and a heartbeat client on the multi-host URL (``target_session_attrs=
read-write``), as in tests/devtools/test_failover.py. Mid-way through a day's balance
checks the primary is killed; a watchdog notices (two failed probes, 0.5 s apart) and
promotes the standby. Measured: primary lost -> standby promoted (the seed's "failover
within 30 seconds"), primary lost -> the worker writes again (RTO), and the newest commit
acknowledged before the loss against what the promoted standby holds (RPO). Checked:
every active customer has exactly one audited check per day, nothing lost or doubled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg2
from chaos_servers import OwnPostgres
from drill_workload import Days, Heartbeat, audit_problems, newest_heartbeat
from pg_clusters import BackRest, Pg15, StandbyPair, migrate_and_seed

Say = Callable[[str], None]
# Two past business dates (a check date may not be in the future).
DAY_A, DAY_B = date.today() - timedelta(days=12), date.today() - timedelta(days=11)


@dataclass
class Options:
    customers: int
    archive_timeout: int
    workdir: Path
    say: Say
    day_timeout: float = 300.0


@dataclass
class Outcome:
    failover_seconds: float = 0.0
    rto_seconds: float = 0.0
    heartbeat_back_seconds: float = 0.0
    rpo_seconds: float = 0.0
    committed_before: int = 0
    problems: list[str] = field(default_factory=list)


def run(opts: Options) -> Outcome:
    out = Outcome()
    root = opts.workdir / "failover"
    root.mkdir(mode=0o755)
    with ExitStack() as cleanup:
        _scenario(opts, out, root, cleanup)
    return out


def _pg15(path: Path) -> OwnPostgres:
    return Pg15(path)


def _scenario(opts: Options, out: Outcome, root: Path, cleanup: ExitStack) -> None:
    say = opts.say
    pair = StandbyPair(root, "premium", server=_pg15)
    primary, standby = pair.primary, pair.standby
    assert isinstance(primary, Pg15) and isinstance(standby, Pg15)
    backrest = BackRest(primary, root / "backrest")
    backrest.share_with(standby)  # once promoted it archives into the same repository
    cleanup.callback(pair.stop)
    pair.start(lambda p: primary.init_with(backrest.server_settings(opts.archive_timeout)))
    backrest.pgbr.stanza_create()
    url = pair.url()
    migrate_and_seed(url, opts.customers)
    (root / "work").mkdir()
    writers = Days(url, root / "work", opts.customers)
    cleanup.callback(writers.stop)
    writers.start()
    beat = Heartbeat(url)
    cleanup.callback(beat.stop)
    beat.start()

    writers.write([DAY_A], opts.day_timeout)
    writers.enqueue(DAY_B)
    deadline = time.monotonic() + opts.day_timeout
    while writers.count(DAY_B) < opts.customers // 4:
        if time.monotonic() > deadline:
            raise RuntimeError("day B did not start")
        time.sleep(0.05)
    out.committed_before = writers.count(DAY_B)

    lost = time.time()
    pair.kill_primary()
    _watch_and_promote(pair, primary.port)
    promoted = time.time()
    out.failover_seconds = round(promoted - lost, 1)
    say(f"  primary killed with {out.committed_before} of {opts.customers} checks of the day "
        f"written; standby promoted {out.failover_seconds} s later")
    writers.wait(DAY_B, opts.day_timeout)
    back = beat.first_acked_after(lost)
    out.heartbeat_back_seconds = round((back or time.time()) - lost, 1)
    last_seq, last_at = beat.last_acked_before(lost)
    beat.stop()

    pg = psycopg2.connect(host="127.0.0.1", port=standby.port, user="postgres", dbname="premium")
    try:
        out.rto_seconds = round(_worker_back(pg, lost) - lost, 1)
        newest = newest_heartbeat(pg)
        if newest < last_seq:
            out.rpo_seconds = round(last_at - beat.acked.get(newest, 0.0), 1)
            out.problems.append(f"{last_seq - newest} acknowledged commits lost in the failover")
        out.problems += _day_problems(pg, opts.customers)
        out.problems += audit_problems(pg)
    finally:
        pg.close()
    say(f"  the worker wrote again {out.rto_seconds} s after the loss (a client on the same URL "
        f"after {out.heartbeat_back_seconds} s); day finished on the promoted standby")


def _watch_and_promote(pair: StandbyPair, port: int, every: float = 0.5) -> None:
    """The health check: two failed probes in a row, then promote the standby."""
    failures = 0
    while failures < 2:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                             connect_timeout=1).close()
            failures = 0
        except psycopg2.OperationalError:
            failures += 1
        if failures < 2:
            time.sleep(every)
    pair.promote()


def _worker_back(pg: psycopg2.extensions.connection, lost: float) -> float:
    """When the worker's first transaction after the loss began (server clock, same host)."""
    since = datetime.fromtimestamp(lost, UTC).replace(tzinfo=None)
    with pg.cursor() as cur:
        cur.execute("SELECT min(created_at) FROM daily_balance_checks WHERE created_at > %s",
                    (since,))
        row = cur.fetchone()
    if not row or row[0] is None:
        raise RuntimeError("the worker wrote nothing after the failover")
    first: datetime = row[0]
    return first.replace(tzinfo=UTC).timestamp()


def _day_problems(pg: psycopg2.extensions.connection, customers: int) -> list[str]:
    problems = []
    with pg.cursor() as cur:
        cur.execute("SELECT check_date, count(*) FROM daily_balance_checks GROUP BY 1")
        per_day = {d: int(n) for d, n in cur.fetchall()}
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM daily_balance_checks "
                    "GROUP BY customer_id, check_date HAVING count(*) > 1) x")
        dup = cur.fetchone()
    if per_day != {DAY_A: customers, DAY_B: customers}:
        problems.append(f"checks per day {per_day}, expected {customers} each")
    if dup and dup[0]:
        problems.append(f"{dup[0]} duplicated checks")
    return problems
