"""``premium-notify status``: recent runs per stage, queues, dead letters, stuck rows."""

from __future__ import annotations

import json

import typer

from app.campaign.report import status_lines
from app.cli.common import OutputFormat, broker_view, console, emit_rows
from app.cli.groups import cli
from app.db.session import session_scope
from app.maintenance import status as ops_status
from app.maintenance.dlq import BrokerView

RUN_COLUMNS = ["job", "run_key", "status", "started_at", "finished_at", "duration_s", "summary"]
QUEUE_COLUMNS = ["queue", "waiting", "delayed", "dead_letters", "oldest_waiting_s"]
STUCK_COLUMNS = ["kind", "rows", "older_than", "oldest"]


def _redis() -> BrokerView | None:
    return broker_view(required=False)


_PER_JOB_OPT = typer.Option(3, "--runs", min=1, help="Recent runs shown per job.")
_FMT_OPT = typer.Option(OutputFormat.TABLE, "--format", help="table, json or csv")


@cli.command("status")
def status(
    per_job: int = _PER_JOB_OPT,
    fmt: OutputFormat = _FMT_OPT,
) -> None:
    """Recent runs of every stage, queue depths, dead-letter queues and stuck rows.

    json prints one object {runs, queues, stuck, broker_error, sms}; csv prints one table
    with a 'section' column. Exit code 1 when something needs attention (failed latest
    run, dead letters, stuck rows, broker unreachable, SMS sending paused), so it can be
    used in checks.
    """
    with session_scope() as session:
        st = ops_status.collect(session, _redis(), per_job=per_job)
    if fmt is OutputFormat.JSON:
        payload = {
            "runs": st.runs,
            "queues": st.queues,
            "stuck": st.stuck,
            "broker_error": st.broker_error,
            "sms": st.sms,
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
        emit_rows(st.runs, RUN_COLUMNS + ["error"], fmt, title="Recent runs")
        style = "bold red" if st.sms.get("paused") else None
        for line in status_lines(st.sms):
            console.print(line, style=style, markup=False, highlight=False)
        if st.broker_error:
            console.print(f"[bold red]broker:[/] {st.broker_error}")
        else:
            emit_rows(st.queues, QUEUE_COLUMNS, fmt, title="Queues")
        emit_rows(st.stuck, STUCK_COLUMNS, fmt, title="Stuck rows")
    if needs_attention(st):
        raise typer.Exit(1)


def needs_attention(st: ops_status.Status) -> bool:
    latest: dict[str, str] = {}
    for run in st.runs:  # newest first within each job
        latest.setdefault(run["job"], run["status"])
    return (
        st.broker_error is not None
        or any(s == "Failed" for s in latest.values())
        or any(q["dead_letters"] for q in st.queues)
        or any(s["rows"] for s in st.stuck)
        or bool(st.sms.get("paused"))
    )
