"""Entry point of ``premium-notify``: imports every command module, then runs Typer."""

from __future__ import annotations

import importlib
import logging

from app.cli.common import UserError, fail
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
    "app.cli.ops_db",
    "app.cli.delivery",
    # The tooling (demo, simulators): the one place production code loads app/devtools.
    "app.devtools.cli",
    "app.cli.serve",
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    # Operators read text; it is masked like the workers' JSON (no phone numbers, secrets).
    configure_logging(logging.WARNING, json_format=False)
    try:
        cli()
    except UserError as exc:
        # Outside click's main loop a typer.Exit is just an exception: exit explicitly.
        raise SystemExit(fail(str(exc)).exit_code) from None


if __name__ == "__main__":
    main()
