"""``premium-notify status [--check]``: recent runs per stage, queues, dead letters, stuck rows,
whether SMS sending is paused (the kill switch, docs/campaign.md) and opt-outs.

The table fits 80 columns (short run ids, compact keys, local start times, human
durations); json and csv carry every field. ``--check`` is for cron and monitoring: exit
status 4 when something needs attention (a failed latest run, a stale run, stuck rows,
dead letters, an unreachable broker, SMS sending paused), 0 otherwise.
"""

from __future__ import annotations

import json
import re
from datetime import UTC
from typing import Any

import typer
from rich import box
from rich.table import Table

from app.campaign.report import status_lines
from app.cli.common import OutputFormat, broker_view, console, emit_rows
from app.cli.errors import ExitCode
from app.cli.groups import cli
from app.config import get_settings
from app.db.session import session_scope
from app.maintenance import status as ops_status
from app.maintenance.dlq import BrokerView

RUN_COLUMNS = [
    "job", "run_key", "status", "stale", "started_at", "finished_at", "duration_s", "summary",
    "run_id",
]  # fmt: skip
QUEUE_COLUMNS = ["queue", "waiting", "delayed", "dead_letters", "oldest_waiting_s"]
STUCK_COLUMNS = ["kind", "rows", "older_than", "oldest"]


def _redis() -> BrokerView | None:
    return broker_view(required=False)


_PER_JOB_OPT = typer.Option(3, "--runs", min=1, help="Recent runs shown per job.")
_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")
_CHECK_OPT = typer.Option(
    False, "--check", help="Exit 4 when something needs attention (for cron and monitoring)."
)


@cli.command("status")
def status(
    per_job: int = _PER_JOB_OPT, fmt: OutputFormat = _FMT_OPT, check: bool = _CHECK_OPT
) -> None:
    """Recent runs of every stage, queue depths, dead-letter queues and stuck rows.

    json prints one object {runs, queues, stuck, broker_error, sms, attention}; csv prints
    one table with a 'section' column. With --check the exit status is 4 when something
    needs attention (failed latest run, stale run, stuck rows, dead letters, broker
    unreachable, SMS sending paused) and 0 otherwise.
    """
    with session_scope() as session:
        st = ops_status.collect(session, _redis(), per_job=per_job)
    attention = needs_attention(st)
    if fmt is OutputFormat.JSON:
        payload = {
            "runs": st.runs,
            "queues": st.queues,
            "stuck": st.stuck,
            "broker_error": st.broker_error,
            "sms": st.sms,
            "attention": attention,
        }
        typer.echo(json.dumps(payload, default=str, ensure_ascii=False))
    elif fmt is OutputFormat.CSV:
        rows = (
            [{"section": "run", **r} for r in st.runs]
            + [{"section": "queue", **q} for q in st.queues]
            + [{"section": "stuck", **s} for s in st.stuck]
            + [{"section": "sms", "summary": " ".join(status_lines(st.sms))}]
        )
        columns = ["section", *dict.fromkeys(RUN_COLUMNS + QUEUE_COLUMNS + STUCK_COLUMNS)]
        emit_rows(rows, columns, fmt)
    else:
        _print_tables(st, attention)
    if check and attention:
        raise typer.Exit(ExitCode.ATTENTION)


def needs_attention(st: ops_status.Status) -> list[str]:
    """What an operator must look at, one short line each (empty: all is well)."""
    reasons: list[str] = []
    latest: dict[str, dict[str, Any]] = {}
    for run in st.runs:  # newest first within each job
        latest.setdefault(run["job"], run)
        if run["stale"]:
            reasons.append(f"{run['job']} {run['run_key']}: stale (its process stopped)")
    reasons += [
        f"{job} {run['run_key']}: latest run failed"
        for job, run in latest.items()
        if run["status"] == "Failed"
    ]
    if st.broker_error is not None:
        reasons.append(f"broker: {st.broker_error}")
    reasons += [
        f"{q['queue']}: {q['dead_letters']} dead letters" for q in st.queues if q["dead_letters"]
    ]
    reasons += [f"{s['kind']}: {s['rows']} stuck rows" for s in st.stuck if s["rows"]]
    if st.sms.get("paused"):
        reasons.append("sms: sending paused (premium-notify sms resume)")
    return reasons


def _print_tables(st: ops_status.Status, attention: list[str]) -> None:
    tz = get_settings().tz
    # Plain fixed-width lines (70 columns), each run's summary or error indented under it.
    typer.echo(f"Recent runs (started: {tz.key} time)")
    typer.echo(_RUN_LINE.format("id", "job", "key", "status", "started", "took"))
    for r in st.runs:
        started = r["started_at"].replace(tzinfo=UTC).astimezone(tz)
        state = "Stale" if r["stale"] else r["status"]
        line = _RUN_LINE.format(
            r["run_id"][:8], r["job"][:15], short_key(r["run_key"])[:17], state,
            f"{started:%m-%d %H:%M}", human_duration(r["duration_s"]),
        )  # fmt: skip
        typer.echo(line.rstrip())
        note = r["error"] if r["status"] == "Failed" else r["summary"]
        if r["stale"]:
            beat = (r["heartbeat_at"] or r["started_at"]).replace(tzinfo=UTC).astimezone(tz)
            note = f"no heartbeat since {beat:%m-%d %H:%M} ({r['lease_owner'] or 'owner unknown'})"
        if note:
            typer.echo(" " * 9 + _clip(" ".join(str(note).split()), 80 - 9))
    typer.echo()
    for line in status_lines(st.sms, tz):  # the kill switch and opt-outs (app.campaign)
        typer.echo(_clip(line, 80))
    typer.echo()
    if st.broker_error:
        console.print(f"[bold red]broker:[/] {st.broker_error}", soft_wrap=False)
    else:
        queues = Table(title="Queues", box=box.SIMPLE_HEAD, pad_edge=False)
        for name in ("queue", "waiting", "delayed", "dead", "oldest"):
            queues.add_column(name, no_wrap=True)
        for q in st.queues:
            oldest = q["oldest_waiting_s"]
            queues.add_row(
                q["queue"], str(q["waiting"]), str(q["delayed"]), str(q["dead_letters"]),
                "" if oldest is None else human_duration(oldest),
            )  # fmt: skip
        console.print(queues)
    stuck = Table(title="Stuck rows", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("kind", "rows", "older than", "oldest"):
        stuck.add_column(name, no_wrap=True)
    for s in st.stuck:
        oldest = "" if s["oldest"] is None else f"{s['oldest']:%Y-%m-%d %H:%M}"
        stuck.add_row(s["kind"], str(s["rows"]), s["older_than"], oldest)
    console.print(stuck)
    for reason in attention:
        console.print(f"[bold yellow]attention:[/] {reason}", overflow="ellipsis", no_wrap=True)


_RUN_LINE = "{:<8} {:<15} {:<17} {:<8} {:<11} {:>6}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def human_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


_WINDOW = re.compile(r"(\d{4})-(\d\d)-(\d\d)\.\.(\d{4})-(\d\d)-(\d\d)")


def short_key(key: str) -> str:
    """A gap repair's ``2026-10-01..2026-10-31`` as ``2026-10-01..31``."""
    m = _WINDOW.fullmatch(key)
    if m is None:
        return key
    if m.group(1, 2) == m.group(4, 5):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}..{m.group(6)}"
    if m.group(1) == m.group(4):
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}..{m.group(5)}-{m.group(6)}"
    return key
