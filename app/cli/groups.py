"""The command groups. Command modules add their commands here."""

from __future__ import annotations

import typer

cli = typer.Typer(
    name="premium-notify",
    help="Premium Customer Notification System: operator commands.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
run_app = typer.Typer(help="Run a job in this process (with a progress bar).", no_args_is_help=True)
enqueue_app = typer.Typer(help="Send a job to the broker; prints the run id.", no_args_is_help=True)
report_app = typer.Typer(
    help="Reports for people (table) and machines (csv/json).", no_args_is_help=True
)
simulate_app = typer.Typer(help="Local simulators of external systems.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema and connection.", no_args_is_help=True)

cli.add_typer(run_app, name="run")
cli.add_typer(enqueue_app, name="enqueue")
cli.add_typer(report_app, name="report")
cli.add_typer(simulate_app, name="simulate")
cli.add_typer(db_app, name="db")
