"""Entry point of ``premium-notify``: imports every command module, then runs Typer.

Failures are handled in one place, ``app.cli.errors`` (one line, documented exit codes);
the root callback validates every setting before any command runs and adds the global
``--version`` and ``--debug`` options.
"""

from __future__ import annotations

import importlib
import logging
import sys
from importlib.metadata import PackageNotFoundError, version

import typer

from app.cli import errors
from app.cli.common import err_console
from app.cli.groups import cli
from app.observability.logging import configure_logging

# Each module registers its commands on app.cli.groups when imported.
COMMAND_MODULES = (
    "app.cli.db",
    "app.cli.customers",
    "app.cli.balances",
    "app.cli.qualification",
    "app.cli.reports",
    "app.cli.sms",
    "app.cli.sms_controls",
    "app.cli.status",
    "app.cli.dlq",
    "app.cli.gdpr",
    "app.cli.retention",
    "app.cli.archive",
    "app.cli.ops_db",
    "app.cli.ops_backup",
    "app.cli.audit",
    "app.cli.delivery",
    # The tooling (demo, simulators): the one place production code loads app/devtools.
    "app.devtools.cli",
    "app.cli.serve",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"premium-notify {version('premium-notify')}")
        except PackageNotFoundError:  # running from a source tree that is not installed
            typer.echo("premium-notify (not installed)")
        raise typer.Exit()


@cli.callback()
def root(
    version_: bool = typer.Option(
        False, "--version", is_eager=True, callback=_version, help="Print the version and exit."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show the traceback of a failure (also: PN_DEBUG=1)."
    ),
) -> None:
    """Premium Customer Notification System: operator commands."""
    errors.State.debug = debug
    if not _asks_for_help():
        # Every setting, before any command touches one (a bad value: one line, exit 2).
        from app.config import get_settings

        get_settings()


def _asks_for_help() -> bool:
    # Help and the version work whatever the settings say.
    return bool({"--help", "-h", "--version"} & set(sys.argv[1:]))


def main() -> None:
    def start() -> object:
        if not _asks_for_help():
            # Operators read text; masked like the workers' JSON (no phone numbers,
            # secrets). It reads the settings: a bad one ends in the error layer.
            configure_logging(logging.WARNING, json_format=False)
        return cli(standalone_mode=False)

    raise SystemExit(errors.run(start, err_console))


if __name__ == "__main__":
    main()
