"""Entry point of ``premium-notify``: imports every command module, then runs Typer."""

from __future__ import annotations

import importlib
import logging

from app.cli.common import UserError, fail
from app.cli.groups import cli

# Each module registers its commands on app.cli.groups when imported.
COMMAND_MODULES = ("app.cli.db",)

for _module in COMMAND_MODULES:
    importlib.import_module(_module)


def main() -> None:
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        cli()
    except UserError as exc:
        raise fail(str(exc)) from None


if __name__ == "__main__":
    main()
