"""The tooling's commands: ``premium-notify demo`` and ``premium-notify simulate …``.

Loaded by the CLI's composition root (``app.cli.main``) like every command module; the
rest of the product imports nothing from ``app.devtools``.

``demo [--customers N] [--month YYYY-MM]`` is what ``./scripts/demo`` runs: the whole
month, locally. Without configuration it uses the embedded PostgreSQL, an in-process
broker and workers, and the two simulators (app/devtools/demo/environment.py says what
replaces what); with DATABASE_URL, REDIS_URL, CORE_BANKING_URL or TWILIO_* set it uses
those instead. docs/demo.md describes the stages and the measured time.
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
    err_console,
    parse_month,
    progress_bar,
    require_writable,
)
from app.cli.groups import cli, simulate_app
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


@simulate_app.command("core-banking")
def simulate_core_banking(
    port: int = typer.Option(8090, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    seed: int = typer.Option(1, help="Seed of the balances and of the fault dice."),
    token: str | None = typer.Option(None, envvar="CORE_BANKING_API_TOKEN", help="Bearer token."),
    latency: float = typer.Option(0.0, help="Seconds added to every request."),
    error_rate: float = typer.Option(0.0, help="Share of requests answered 500."),
    rate_429: float = typer.Option(0.0, help="Share of requests answered 429."),
    missing_rate: float = typer.Option(0.0, help="Share of accounts the bank does not know."),
    outage: bool = typer.Option(False, help="Answer 503 to everything."),
) -> None:
    """A core-banking balance API with deterministic balances and fault injection."""
    # Imported on use: every other command would otherwise load the web server.
    from app.devtools.simulators.core_banking import CoreBankingConfig
    from app.devtools.simulators.core_banking import serve as serve_core_banking

    config = CoreBankingConfig(
        seed=seed, token=token, latency=latency, error_rate=error_rate, rate_429=rate_429,
        missing_rate=missing_rate, outage=outage,
    )  # fmt: skip
    err_console.print(f"core-banking simulator on http://{host}:{port} (seed {seed})")
    serve_core_banking(config, host=host, port=port)


@simulate_app.command("carrier")
def simulate_carrier(
    port: int = typer.Option(8089, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    account_sid: str = typer.Option("AC" + "0" * 32, envvar="TWILIO_ACCOUNT_SID"),
    auth_token: str = typer.Option("simulator-token", envvar="TWILIO_AUTH_TOKEN"),
    sent_after: float = typer.Option(0.5, help="Seconds from create to 'sent'."),
    delivered_after: float = typer.Option(2.0, help="Seconds from create to the final status."),
    latency: float = typer.Option(0.0, help="Seconds added to every create."),
    rate_429: float = typer.Option(0.0, help="Share of creates answered 429 / 20429."),
    rate_500: float = typer.Option(0.0, help="Share of creates answered 500 (not stored)."),
    accept_timeout_rate: float = typer.Option(0.0, help="Share stored, then answered late."),
    accept_timeout_delay: float = typer.Option(30.0, help="How late (seconds)."),
    outage: bool = typer.Option(False, help="Answer 503 to everything."),
    seed: int | None = typer.Option(None, help="Seed of the fault dice (reproducible runs)."),
) -> None:
    """A Twilio-compatible carrier (Messages create/fetch/list) with fault injection."""
    from app.devtools.simulators.carrier import SimConfig
    from app.devtools.simulators.carrier import serve as serve_carrier

    config = SimConfig(
        account_sid=account_sid, auth_token=auth_token, sent_after=sent_after,
        delivered_after=delivered_after, latency=latency, rate_429=rate_429, rate_500=rate_500,
        accept_timeout_rate=accept_timeout_rate, accept_timeout_delay=accept_timeout_delay,
        outage=outage, seed=seed,
    )  # fmt: skip
    err_console.print(f"carrier simulator on http://{host}:{port} (account {account_sid})")
    serve_carrier(config, host=host, port=port)
