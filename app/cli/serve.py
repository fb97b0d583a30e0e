"""``premium-notify serve callbacks``: the carrier-callback receiver (app/callbacks)."""

from __future__ import annotations

import typer

from app.cli.common import fail
from app.cli.groups import cli
from app.config import ConfigError, get_settings

serve_app = typer.Typer(help="Long-running services.", no_args_is_help=True)
cli.add_typer(serve_app, name="serve")


@serve_app.command("callbacks")
def serve_callbacks(
    host: str = typer.Option("127.0.0.1", help="Address to bind (the proxy's side)."),
    port: int = typer.Option(8090, min=1, max=65535, help="Port of the callback endpoints."),
    metrics_port: int = typer.Option(
        None, min=0, max=65535, help="Port of /metrics (default METRICS_PORT; 0: none)."
    ),
) -> None:
    """Receive the carrier's signed status and inbound-message callbacks (docs/callbacks.md)."""
    from app.callbacks.server import run

    settings = get_settings()
    metrics = settings.metrics_port if metrics_port is None else metrics_port
    try:
        run(host, port, metrics_port=metrics, settings=settings)
    except ConfigError as exc:
        raise fail(str(exc)) from None
