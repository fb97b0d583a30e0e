"""The recovery drill (``./scripts/recovery-drill``): restore and fail over, measured.

Runs on clusters of its own (the machine's PostgreSQL 15 binaries, data in a temporary
folder, free loopback ports; the machine's server on 5432 is never touched), with WAL
archived by pgBackRest exactly as production configures it, and real workers:

(a) point in time (``drill_pitr``): a month of data, a full backup, more writing, a target
    time, more writing and a GDPR erasure, the primary lost; restore to the end of the WAL
    (the data lost: RPO) and to the target (the state equal to the target's, the audit
    trail intact, the erasure re-applied before the database is opened);
(b) failover (``drill_failover``): the primary killed mid-run, the streaming standby
    promoted, the workers carrying on through the multi-host URL.

It ends with ``RPO: <s> s`` and ``RTO: <s> s`` beside the seed's targets (RPO < 1 hour,
RTO < 5 minutes, failover < 30 seconds) and exits 1 when a target is missed or a check
fails. ``--short`` is the variant the test suite runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

import drill_failover
import drill_pitr
from drill_workload import clean_env
from pg_clusters import PG15_BIN

from app.config import get_settings

RPO_TARGET, RTO_TARGET, FAILOVER_TARGET = 3600.0, 300.0, 30.0
PRODUCTION_ARCHIVE_TIMEOUT = 60


class DrillTimeout(Exception):
    """The drill ran past --timeout."""


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recovery-drill", description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the test suite's variant")
    parser.add_argument("--customers", type=int, help="customers of the month (10000; short 150)")
    parser.add_argument("--quiet", type=float, help="seconds of low traffic before the loss")
    parser.add_argument("--archive-timeout", type=int,
                        help=f"seconds (production: {PRODUCTION_ARCHIVE_TIMEOUT}; short: 10)")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    short = args.short
    args.customers = args.customers or (150 if short else 10000)
    args.archive_timeout = args.archive_timeout or (10 if short else PRODUCTION_ARCHIVE_TIMEOUT)
    args.quiet = args.quiet if args.quiet is not None else (args.archive_timeout + 3 if short
                                                            else 75.0)
    args.timeout = args.timeout or (240.0 if short else 1500.0)
    return args


def _missing_tools() -> list[str]:
    missing = [t for t in ("pgbackrest", "age", "redis-server") if shutil.which(t) is None]
    if not (PG15_BIN / "postgres").exists():
        missing.append(f"PostgreSQL 15 ({PG15_BIN})")
    return missing


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise DrillTimeout("the drill ran past its --timeout")


def main() -> int:
    args = _options()
    missing = _missing_tools()
    if missing:
        print(f"recovery-drill: missing {', '.join(missing)} (scripts/recovery-drill installs "
              "them when run as root)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="pn-drill-"))
    work.chmod(0o755)  # the clusters run as an unprivileged user when we are root
    drill_env = {
        "ERASURE_JOURNAL_DIR": str(work / "erasure-journal"),
        "BACKUP_AGE_RECIPIENTS_FILE": str(work / "keys" / "recipients.txt"),
        "BACKUP_AGE_IDENTITY_FILE": str(work / "keys" / "identity.txt"),
        "ENVIRONMENT": "drill",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DRAMATIQ_BROKER"):
        os.environ.pop(name, None)  # nothing of the caller's servers
    os.environ.update(drill_env)
    get_settings.cache_clear()
    env = clean_env(**drill_env)
    say = _printer()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(args.timeout))
    began = time.monotonic()
    kind = "short" if args.short else "full"
    try:
        say(f"Recovery drill ({kind}): own clusters, PostgreSQL {_pg_version()}, "
            f"{_pgbr_version()}, loopback only; work folder {work}")
        say("(a) point in time")
        a = drill_pitr.run(drill_pitr.Options(
            customers=args.customers, days_before=2 if args.short else 4,
            days_after=1 if args.short else 3, quiet=args.quiet,
            archive_timeout=args.archive_timeout, workdir=work, env=env, say=say))
        say("(b) failover")
        b = drill_failover.run(drill_failover.Options(
            customers=120 if args.short else 2000, archive_timeout=args.archive_timeout,
            workdir=work, say=say))
    finally:
        signal.alarm(0)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return _summary(args, a, b, time.monotonic() - began, say)


def _summary(args: argparse.Namespace, a: drill_pitr.Outcome, b: drill_failover.Outcome,
             seconds: float, say: drill_pitr.Say) -> int:
    rpo = max(a.rpo_seconds, b.rpo_seconds)
    rto = max(b.rto_seconds, b.heartbeat_back_seconds)
    restore = a.restore_seconds + a.replay_seconds
    problems = a.problems + b.problems
    say("")
    say(f"data: {a.rows.get('customers', 0):,} customers, "
        f"{a.rows.get('daily_balance_checks', 0):,} balance checks, "
        f"{a.rows.get('monthly_qualifications', 0):,} qualifications, "
        f"{a.rows.get('notifications', 0):,} notifications, {a.rows.get('audit_log', 0):,} "
        f"audit rows: database {a.database_bytes / 1e6:.1f} MB, full backup "
        f"{a.backup_stored_bytes / 1e6:.1f} MB stored in {a.backup_seconds} s")
    say(f"restore to a time: {restore:.1f} s ({a.restore_seconds} s restore + "
        f"{a.replay_seconds} s WAL replay) for {a.database_bytes / 1e6:.1f} MB; "
        f"{a.tables_equal} tables equal to the target state; {a.erasure}")
    say(f"WAL archiving: pgBackRest archive-push, archive_timeout {args.archive_timeout} s"
        + ("" if args.archive_timeout == PRODUCTION_ARCHIVE_TIMEOUT
           else f" (production: {PRODUCTION_ARCHIVE_TIMEOUT} s; shortened for the short run)"))
    say(f"RPO: {rpo:.1f} s   (target < {RPO_TARGET:.0f} s; point in time {a.rpo_seconds} s "
        f"after losing the primary, failover {b.rpo_seconds} s: synchronous standby)")
    say(f"RTO: {rto:.1f} s   (target < {RTO_TARGET:.0f} s; primary lost -> the application "
        "writes again, by failover)")
    say(f"failover: {b.failover_seconds:.1f} s   (target < {FAILOVER_TARGET:.0f} s; primary "
        "lost -> standby promoted)")
    missed = [name for name, value, target in (("RPO", rpo, RPO_TARGET), ("RTO", rto, RTO_TARGET),
              ("failover", b.failover_seconds, FAILOVER_TARGET)) if value >= target]
    for problem in problems:
        say(f"FAILED CHECK: {problem}")
    verdict = "passed" if not (missed or problems) else f"FAILED ({', '.join(missed) or 'checks'})"
    say(f"drill {verdict} in {seconds:.0f} s")
    return 0 if not (missed or problems) else 1


def _printer() -> drill_pitr.Say:
    def say(line: str) -> None:
        print(line, flush=True)

    return say


def _pg_version() -> str:
    out = subprocess.run([str(PG15_BIN / "postgres"), "--version"], capture_output=True,
                         text=True).stdout
    parts = out.split()  # postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)
    return parts[2] if len(parts) > 2 else "15"


def _pgbr_version() -> str:
    return subprocess.run(["pgbackrest", "version"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
