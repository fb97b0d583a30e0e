"""``premium-notify demo [--customers N] [--month YYYY-MM]``: the whole month, locally.

What ``./scripts/demo`` runs. Without configuration it uses the embedded PostgreSQL, an
in-process broker and workers, and the two simulators (app/devtools/demo/environment.py says
what replaces what); with DATABASE_URL, REDIS_URL, CORE_BANKING_URL or TWILIO_* set it
uses those instead. docs/demo.md describes the stages and the measured time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    OutputFormat,
    UserError,
    console,
    emit_rows,
    parse_month,
    progress_bar,
    require_writable,
)
from app.cli.groups import cli
from app.config import PROJECT_ROOT, get_settings
from app.months import Month, local_today
from app.qualification.months import QualificationError, ensure_closed


def _month(text: str | None) -> Month:
    tz = get_settings().tz
    try:
        month = parse_month(text) if text else Month.of(local_today(tz)).previous()
        ensure_closed(month, tz)
    except QualificationError as exc:
        raise UserError(str(exc)) from None
    return month


def _table(title: str, values: Mapping[str, object]) -> None:
    rows = [{"": k, "value": v} for k, v in values.items()]
    emit_rows(rows, ("", "value"), OutputFormat.TABLE, title=title)


@cli.command("demo")
def demo(
    customers: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Customers to generate.")
    ] = 5000,
    month: Annotated[
        str | None,
        typer.Option(help="YYYY-MM, a closed month (default: the previous one, bank time)."),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, max=999, help="Customers and balances follow it.")
    ] = 1,
    threads: Annotated[int, typer.Option(min=1, max=32, help="In-process worker threads.")] = 4,
    database_name: Annotated[
        str, typer.Option(help="Database created fresh on the server for each run.")
    ] = "premium_notify_demo",
    reuse_database: Annotated[
        bool, typer.Option(help="Use the existing database (DATABASE_URL's) instead.")
    ] = False,
    workdir: Annotated[
        Path, typer.Option(help="Where the generated customer file and its rejects go.")
    ] = PROJECT_ROOT / ".data" / "demo",
    delivery_timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to follow delivery before reporting.")
    ] = 120.0,
    summary_json: Annotated[
        Path | None, typer.Option(help="Also write the figures as JSON (counts only).")
    ] = None,
) -> None:
    """Generate customers and run a month through the production actors, with a report."""
    from app.devtools.demo.environment import DemoSetupError, demo_environment
    from app.devtools.demo.pipeline import DemoFailed, DemoOptions, run_demo

    require_writable(summary_json, "--summary-json")  # before an hour of work, not after
    target = _month(month)
    started = time.monotonic()
    console.print(
        f"[bold]Premium notification demo[/]: {customers} customers, month {target} "
        f"(threshold {get_settings().qualification_threshold} NIS every calendar day)"
    )
    opts = DemoOptions(
        customers,
        target,
        workdir,
        seed=seed,
        worker_threads=threads,
        delivery_timeout=delivery_timeout,
    )
    try:
        with demo_environment(
            seed=seed, database_name=database_name, reuse_database=reuse_database
        ) as env:
            for note in env.notes:
                console.print(f"  - {note}")
            result = run_demo(env, opts, progress_bar, console.print)
    except (DemoSetupError, DemoFailed) as exc:
        raise UserError(str(exc)) from None
    result.seconds["total"] = round(time.monotonic() - started, 2)

    _table(f"Generated customers (file: {workdir / 'customers.csv'})", result.generated)
    _table("Customer import", {**result.imported, **result.rejected_by_reason})
    _table(f"Monthly report {target} (as `report month --month {target}`)", result.report)
    _table("Funnel", result.funnel)
    _table("Notifications by submission status", result.notifications)
    _table("Latest delivery status of the submitted messages", result.delivery)
    if result.carrier is not None:
        _table("Carrier simulator", result.carrier)
    _table("Seconds per stage", result.seconds)
    if summary_json is not None:
        summary_json.write_text(json.dumps(asdict(result), default=str, indent=2), "utf-8")
