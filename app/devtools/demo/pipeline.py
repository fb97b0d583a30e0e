"""The demo's month, end to end, through the actors production runs.

Customers are imported with the real importer; then every stage is a message to the
same actor the scheduler would kick (``balances.start_day`` per day with its shard
fan-out and fan-in, ``qualification.run_month`` which chains
``notifications.prepare_month`` -> ``send_batch``, ``delivery.poll`` -> ``poll_day``),
consumed by a ``dramatiq.Worker`` running in this process. The demo only enqueues and
watches the database, the way an operator would.

``app`` does not import Dramatiq at module level (the worker is a separate layer); the
worker package is loaded lazily here, after ``demo_environment`` chose the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from app.config import get_settings
from app.customers.importer import import_customers, write_rejects
from app.db.session import session_scope
from app.devtools.demo import state
from app.devtools.demo.customers import composition, generate, write_csv
from app.devtools.demo.environment import DemoEnvironment
from app.maintenance.partitions import ensure_range
from app.models.enums import RunStatus, SubmissionStatus
from app.months import Month
from app.qualification.reports import month_report

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Advance]]
Say = Callable[[str], None]

POLL_SECONDS = 0.25
DELIVERY_KICK_SECONDS = 1.0


class DemoFailed(RuntimeError):
    """A stage failed or did not finish in time (the message says which and why)."""


@dataclass
class DemoOptions:
    customers: int
    month: Month
    workdir: Path
    seed: int = 1
    worker_threads: int = 4
    shards_per_day: int = 2
    stage_timeout: float = 900.0
    delivery_timeout: float = 120.0


@dataclass
class DemoResult:
    month: str
    generated: dict[str, int]
    imported: dict[str, int]
    rejected_by_reason: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    funnel: dict[str, int] = field(default_factory=dict)
    notifications: dict[str, int] = field(default_factory=dict)
    delivery: dict[str, int] = field(default_factory=dict)
    carrier: dict[str, int] | None = None
    notes: list[str] = field(default_factory=list)


class InProcessWorkers:
    """A ``dramatiq.Worker`` on the broker ``worker.tasks`` built, in this process."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.broker: Any = None
        self.worker: Any = None

    def __enter__(self) -> InProcessWorkers:
        import dramatiq

        from worker import tasks  # builds the broker (DRAMATIQ_BROKER) and every actor

        self.broker = tasks.broker
        self.worker = dramatiq.Worker(self.broker, worker_threads=self.threads, worker_timeout=100)
        self.worker.start()
        return self

    def send(self, actor_name: str, *args: Any) -> None:
        self.broker.get_actor(actor_name).send(*args)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.worker.stop()


def _watch(
    what: str,
    poll: Callable[[Session], tuple[bool, int]],
    advance: Advance,
    timeout: float,
    every: Callable[[], None] | None = None,
) -> bool:
    """Poll until ``poll`` says done (True) or ``timeout`` (False); advance the bar."""
    deadline = time.monotonic() + timeout
    shown = 0
    while True:
        if every is not None:
            every()
        with session_scope() as session:
            done, value = poll(session)
        if value > shown:
            advance(value - shown)
            shown = value
        if done:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_SECONDS)


def import_stage(opts: DemoOptions, progress: ProgressFactory, result: DemoResult) -> None:
    customers = generate(opts.customers, opts.seed)
    result.generated = composition(customers)
    path = write_csv(customers, opts.workdir / "customers.csv")
    with progress("import customers", len(customers)) as advance:
        report = import_customers(
            session_scope, path, region=get_settings().default_phone_region, progress=advance
        )
    write_rejects(opts.workdir / "customers.rejects.csv", report.problems())
    result.imported = report.as_dict()
    reasons: dict[str, int] = {}
    for note in report.problems() + report.warnings:  # rejected, skipped, and warnings
        key = f"{note.outcome}: {note.reason}"
        reasons[key] = reasons.get(key, 0) + 1
    result.rejected_by_reason = reasons


def balance_stage(opts: DemoOptions, workers: InProcessWorkers, progress: ProgressFactory) -> None:
    month = opts.month
    days = [month.first + timedelta(days=i) for i in range(month.days)]
    keys = [d.isoformat() for d in days]
    with session_scope() as session:
        # The demo may replay any past month: its partitions (migration 0009) first.
        ensure_range(session, month, month)
        since = state.db_now(session)
        active = state.active_customers(session)
        before = state.month_checks(session, month)
    for day in keys:
        workers.send("balances.start_day", day, opts.shards_per_day, "http")

    def poll(session: Session) -> tuple[bool, int]:
        runs = state.runs_by_status(session, "balance_checks", keys, since)
        if runs.get(str(RunStatus.FAILED)):
            raise DemoFailed(f"{runs[str(RunStatus.FAILED)]} balance-check day runs failed")
        return runs.get(str(RunStatus.FINISHED), 0) == len(keys), (
            state.month_checks(session, month) - before
        )

    with progress(f"balance checks, {len(days)} days", active * len(days)) as advance:
        if not _watch("balance checks", poll, advance, opts.stage_timeout):
            raise DemoFailed(f"balance checks not finished after {opts.stage_timeout:.0f}s")


def qualification_stage(
    opts: DemoOptions, workers: InProcessWorkers, progress: ProgressFactory
) -> None:
    key = str(opts.month)
    with session_scope() as session:
        since = state.db_now(session)
    # Production's actor: it also enqueues notifications.prepare_month when it finishes.
    workers.send("qualification.run_month", key)

    def poll(session: Session) -> tuple[bool, int]:
        status, error = state.latest_run(session, "qualification", key, since)
        if status == RunStatus.FAILED:
            raise DemoFailed(f"qualification of {key} failed: {error}")
        return status == RunStatus.FINISHED, int(status == RunStatus.FINISHED)

    with progress(f"qualification {key}", 1) as advance:
        if not _watch("qualification", poll, advance, opts.stage_timeout):
            raise DemoFailed(f"qualification not finished after {opts.stage_timeout:.0f}s")


def notification_stage(opts: DemoOptions, progress: ProgressFactory, since: datetime) -> None:
    month = opts.month
    with session_scope() as session:
        total = state.qualified(session, month)
    if total == 0:
        return
    waiting = (str(SubmissionStatus.QUEUED), str(SubmissionStatus.SENDING))

    def poll(session: Session) -> tuple[bool, int]:
        refused = state.event_since(session, "notifications_prepare_refused", since)
        if refused:
            raise DemoFailed(f"notifications not prepared: {refused}")
        by_status = state.notifications_by_status(session, month)
        rows = sum(by_status.values())
        pending = sum(by_status.get(s, 0) for s in waiting)
        return rows >= total and pending == 0, rows - pending

    with progress("SMS to qualified customers", total) as advance:
        if not _watch("notifications", poll, advance, opts.stage_timeout):
            raise DemoFailed(f"SMS not all sent after {opts.stage_timeout:.0f}s")


def delivery_stage(
    opts: DemoOptions, workers: InProcessWorkers, progress: ProgressFactory, say: Say
) -> None:
    with session_scope() as session:
        submitted, _ = state.delivery_progress(session, opts.month)
    if submitted == 0:
        return
    last_kick = [0.0]

    def kick() -> None:
        # What the periodiq kick does every few minutes, every second here.
        if time.monotonic() - last_kick[0] >= DELIVERY_KICK_SECONDS:
            workers.send("delivery.poll")
            last_kick[0] = time.monotonic()

    def poll(session: Session) -> tuple[bool, int]:
        total, final = state.delivery_progress(session, opts.month)
        return final >= total, final

    with progress("delivery status", submitted) as advance:
        finished = _watch("delivery", poll, advance, opts.delivery_timeout, every=kick)
    if not finished:
        say(
            f"delivery: not every message is final after {opts.delivery_timeout:.0f}s; "
            "the periodic poll would keep following them (deadline: DELIVERY_DEADLINE_HOURS)"
        )


def summarize(env: DemoEnvironment, opts: DemoOptions, result: DemoResult) -> None:
    month = opts.month
    with session_scope() as session:
        result.report = month_report(session, month)
        result.notifications = state.notifications_by_status(session, month)
        result.delivery = state.delivery_by_status(session, month)
        active = state.active_customers(session)
        checks = state.month_checks(session, month)
    imported = result.imported.get("inserted", 0) + result.imported.get("updated", 0)
    imported += result.imported.get("unchanged", 0)
    result.funnel = {
        "customers in the file": result.generated.get("customers", 0),
        "imported (valid rows)": imported,
        "inactive accounts (never checked)": imported - active,
        "active accounts (checked daily)": active,
        "balance checks written": checks,
        "evaluated for the month": int(result.report.get("evaluated", 0)),
        "active, unknown to core banking": active - int(result.report.get("evaluated", 0)),
        "qualified": int(result.report.get("qualified", 0)),
        "SMS accepted by the carrier": int(result.report.get("sms_sent", 0)),
        "delivered": int(result.report.get("delivered", 0)),
    }
    if env.carrier is not None:
        per_recipient = env.carrier.state.per_recipient()
        result.carrier = {
            "messages": sum(per_recipient.values()),
            "recipients": len(per_recipient),
            "most_to_one_recipient": max(per_recipient.values(), default=0),
        }


def run_demo(
    env: DemoEnvironment, opts: DemoOptions, progress: ProgressFactory, say: Say
) -> DemoResult:
    """Import, then the month through the workers; returns the figures for the report."""
    result = DemoResult(str(opts.month), {}, {}, {}, notes=list(env.notes))
    opts.workdir.mkdir(parents=True, exist_ok=True)

    def timed(name: str, stage: Callable[[], None]) -> None:
        started = time.monotonic()
        stage()
        result.seconds[name] = round(time.monotonic() - started, 2)

    timed("import", lambda: import_stage(opts, progress, result))
    with session_scope() as session:
        since = state.db_now(session)
    with InProcessWorkers(opts.worker_threads) as workers:
        timed("balance_checks", lambda: balance_stage(opts, workers, progress))
        timed("qualification", lambda: qualification_stage(opts, workers, progress))
        timed("notifications", lambda: notification_stage(opts, progress, since))
        timed("delivery", lambda: delivery_stage(opts, workers, progress, say))
    summarize(env, opts, result)
    return result
