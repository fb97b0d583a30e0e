"""Recovery drill, scenario (a): point-in-time recovery from pgBackRest.

A primary archiving WAL exactly as production does (``archive_command`` = pgBackRest,
``archive_timeout``), a month of data, a full backup; then real workers keep writing
balance-check days and a heartbeat client keeps committing; a target time is noted (with
the writers paused for a second, so the expected state is exact); more days, a GDPR
erasure, a quiet spell with only the heartbeat (low traffic: only ``archive_timeout``
ships WAL then); then the primary is lost. Two restores into fresh data folders with the
production procedure (``app.maintenance.pitr``):

* to the end of the archived WAL: the newest heartbeat that came back against the last
  one acknowledged before the loss is the recovery point actually lost (RPO);
* to the target time: every table's count and checksum equals the state noted at the
  target, the audit trail holds, the erasure made after the target is re-applied before
  the database is opened, and opened it shows no trace of the customer.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from drill_workload import (
    BIN,
    Days,
    Heartbeat,
    audit_problems,
    customer_phone,
    erased_problems,
    load_month,
    newest_heartbeat,
    pick_customer,
    server_now,
    state,
    traces,
)
from pg_clusters import PG15_BIN, BackRest, Pg15

from app.config import get_settings
from app.maintenance import backup_service, pitr
from app.maintenance.pgconn import Conn
from app.maintenance.repository import backup as backup_repository
from app.months import Month, local_today

Say = Callable[[str], None]
T = TypeVar("T")


@dataclass
class Options:
    customers: int
    days_before: int
    days_after: int
    quiet: float
    archive_timeout: int
    workdir: Path
    env: dict[str, str]
    say: Say
    day_timeout: float = 300.0


@dataclass
class Outcome:
    rows: dict[str, int] = field(default_factory=dict)
    database_bytes: int = 0
    backup_seconds: float = 0.0
    backup_stored_bytes: int = 0
    restore_seconds: float = 0.0
    replay_seconds: float = 0.0
    tables_equal: int = 0
    rpo_seconds: float = 0.0
    lost_commits: int = 0
    erasure: str = ""
    problems: list[str] = field(default_factory=list)


def _months() -> tuple[Month, list[date]]:
    """The demo's month (closed) and the days the workers write afterwards (the next one)."""
    current = Month.of(local_today(get_settings().tz))
    loaded = current.previous().previous()
    following = Month.of(loaded.next_first)
    return loaded, [following.first + timedelta(days=i) for i in range(following.days)]


def _sizes(conn: Conn) -> tuple[int, dict[str, int]]:
    pg = conn.connect()
    try:
        with pg.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            size = cur.fetchone()
            counts = {}
            for table in ("customers", "daily_balance_checks", "monthly_qualifications",
                          "notifications", "delivery_status", "audit_log"):
                cur.execute(f"SELECT count(*) FROM {table}")
                row = cur.fetchone()
                counts[table] = int(row[0]) if row else 0
    finally:
        pg.close()
    return int(size[0]) if size else 0, counts


def run(opts: Options) -> Outcome:
    """The scenario on servers of its own; everything it started is stopped on the way out."""
    out = Outcome()
    root = opts.workdir / "pitr"
    root.mkdir(mode=0o755)
    with ExitStack() as cleanup:
        _scenario(opts, out, root, cleanup)
    return out


def _scenario(opts: Options, out: Outcome, root: Path, cleanup: ExitStack) -> None:
    say = opts.say
    primary = Pg15(root / "primary")
    backrest = BackRest(primary, root / "backrest")
    primary.init_with(backrest.server_settings(opts.archive_timeout))
    primary.start()
    cleanup.callback(_quietly, primary.stop, "immediate")
    backrest.pgbr.stanza_create()
    backrest.pgbr.check()
    url = primary.url("premium")
    conn = Conn.from_url(url)
    month, days = _months()
    t0 = time.monotonic()
    load_month(url, opts.customers, str(month), root, opts.env)
    out.database_bytes, out.rows = _sizes(conn)
    say(f"  loaded {month}: {out.rows['customers']:,} customers, "
        f"{out.rows['daily_balance_checks']:,} balance checks, "
        f"{out.rows['notifications']:,} notifications, {out.rows['audit_log']:,} audit rows; "
        f"database {out.database_bytes / 1e6:.1f} MB ({time.monotonic() - t0:.0f} s)")
    t0 = time.monotonic()
    heads = _backup_with_heads(backrest, conn, root / "backup-heads.json")
    out.backup_seconds = round(time.monotonic() - t0, 1)
    out.backup_stored_bytes = backrest.pgbr.info().good(1)[-1].repo_size
    recorded = len(json.loads(heads.read_text())["heads"])
    say(f"  full backup: {out.backup_seconds} s, {out.backup_stored_bytes / 1e6:.1f} MB stored "
        f"(zst, aes-256-cbc), {recorded} audit chain head(s) recorded with it")

    (root / "work").mkdir()
    writers = Days(url, root / "work", opts.customers)
    cleanup.callback(_quietly, writers.stop)
    writers.start()
    beat = Heartbeat(url)
    cleanup.callback(_quietly, beat.stop)
    beat.start()
    before, after = days[: opts.days_before], days[opts.days_before :][: opts.days_after]
    writers.write(before, opts.day_timeout)

    beat.pause()  # nothing commits around the target: the expected state is exact
    expected = state(conn)
    target = server_now(conn)
    time.sleep(1.1)
    beat.resume()
    say(f"  wrote {_days(before)}; target time {target.isoformat(timespec='milliseconds')}")

    pg = conn.connect()
    try:
        account = pick_customer(pg)
        customer_id, phone = customer_phone(pg, account)
    finally:
        pg.close()
    _erase(account, url, opts.env)
    writers.write(after, opts.day_timeout)
    say(f"  then {_days(after)} more, a GDPR erasure, {opts.quiet:.0f} s of heartbeats only "
        f"(archive_timeout {opts.archive_timeout} s)")
    time.sleep(opts.quiet)

    loss = time.time()
    primary.stop("immediate")  # the primary is lost: its disk is never read again
    beat.stop()
    writers.stop()
    last_seq, last_at = beat.last_acked_before(loss)

    # As an operator would: premium-notify db pitr, to the end of the archived WAL.
    _pitr_command(root / "latest" / "pgdata", backrest, primary.user, url, opts.env)
    newest = _open(root / "latest", primary, lambda pg: newest_heartbeat(pg))
    recovered_at = beat.acked.get(newest, 0.0)
    out.lost_commits = last_seq - newest
    out.rpo_seconds = round(max(0.0, last_at - recovered_at), 1) if out.lost_commits else 0.0
    say(f"  restore after the loss (end of the archived WAL): {out.lost_commits} heartbeat "
        f"commits lost, the newest kept committed {out.rpo_seconds} s before the last one")

    def at_target(private: Conn) -> None:
        restored = state(private)
        differ = sorted(t for t in expected if restored.get(t) != expected[t])
        out.tables_equal = len(expected) - len(differ)
        if differ or set(restored) != set(expected):
            out.problems.append(f"tables differ from the state at the target: {differ}")
        pg = private.connect()
        try:
            if not traces(pg, [phone]):
                out.problems.append("the restore did not bring the erased customer back")
        finally:
            pg.close()

    cluster = pitr.Cluster(PG15_BIN, "premium", "postgres", primary.user)
    result = pitr.restore_to_time(backrest.pgbr, root / "target" / "pgdata", target, cluster,
                                  inspect=at_target, log=root / "target-pitr.log")
    out.restore_seconds, out.replay_seconds = result.restore_seconds, result.recovery_seconds
    out.erasure = result.replay.line() if result.replay else "no erasure journal"

    def opened_checks(pg: Any) -> list[str]:
        return audit_problems(pg, heads) + erased_problems(pg, customer_id, phone)

    out.problems += _open(root / "target", primary, opened_checks)
    say(f"  restore to the target: pgbackrest restore {out.restore_seconds} s + WAL replay "
        f"{out.replay_seconds} s; {out.tables_equal} tables equal to the target state")


def _backup_with_heads(backrest: BackRest, conn: Conn, path: Path) -> Path:
    """The full backup, annotated with the audit chain's heads as the backup service
    does (app/maintenance/backup_service.py), and those heads as a file: the restored
    database must still contain them (``audit verify --heads``)."""
    pg = conn.connect()
    try:
        heads = backup_repository.audit_chain_heads(pg, days=2)
    finally:
        pg.close()
    backrest.pgbr.backup("full", annotations=backup_service.head_annotations(heads))
    path.write_text(json.dumps({"heads": heads}))
    return path


def _days(days: list[date]) -> str:
    return f"{len(days)} day{'s' if len(days) != 1 else ''} of balance checks"


def _erase(account: str, url: str, env: dict[str, str]) -> None:
    argv = [str(BIN / "premium-notify"), "gdpr", "erase", "--account", account, "--anonymise",
            "-y"]
    done = subprocess.run(argv, env={**env, "DATABASE_URL": url}, capture_output=True,
                          text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"gdpr erase failed: {done.stderr[-1000:]}")


def _pitr_command(pgdata: Path, backrest: BackRest, user: str | None, url: str,
                  env: dict[str, str]) -> None:
    """``premium-notify db pitr`` with the settings the backup service has in production."""
    pgdata.parent.mkdir(mode=0o755, exist_ok=True)
    secret = backrest.root / "cipher-pass"
    secret.write_text(backrest.cipher_pass)
    secret.chmod(0o600)
    argv = [str(BIN / "premium-notify"), "db", "pitr", "--pgdata", str(pgdata), "--no-archive",
            "--pg-bin", str(PG15_BIN), *(["--os-user", user] if user else [])]
    settings = {"DATABASE_URL": url, "BACKUP_PGBACKREST_CONFIG": str(backrest.config),
                "BACKUP_STANZA": backrest.stanza, "BACKUP_CIPHER_PASS_FILE": str(secret),
                "TMPDIR": str(pgdata.parent)}  # its server log and socket stay in the drill's
    done = subprocess.run(argv, env={**env, **settings}, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"db pitr failed: {done.stdout[-1000:]} {done.stderr[-2000:]}")


def _open(folder: Path, primary: Pg15, check: Callable[[Any], T]) -> T:
    """Start a restored cluster as usual (as the workers would see it) and ``check`` it."""
    opened = Pg15(folder)
    opened.env = dict(primary.env)  # it may archive on a new timeline: the passphrase
    opened.own(folder)  # its server log goes there
    opened.socket_dir.mkdir(mode=0o700, exist_ok=True)
    opened.own(opened.socket_dir)
    opened.configure({"port": str(opened.port), "listen_addresses": "127.0.0.1",
                      "unix_socket_directories": str(opened.socket_dir)})
    opened.start()
    try:
        pg = opened.admin("premium")
        try:
            return check(pg)
        finally:
            pg.close()
    finally:
        opened.stop("fast")


def _quietly(action: Callable[..., object], *args: object) -> None:
    try:
        action(*args)
    except Exception:  # noqa: BLE001 - cleaning up after a failure, or already stopped
        pass
