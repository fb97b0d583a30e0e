"""``premium-notify db ...``: migrations and connection facts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from sqlalchemy.engine import make_url

from app.cli.groups import db_app
from app.config import PROJECT_ROOT
from app.db.session import resolve_database_url

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported by the db commands only: it costs every other command a third of a
# second at start.


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", (url or resolve_database_url()).replace("%", "%%"))
    return config


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations (``alembic upgrade head``)."""
    from alembic import command

    command.upgrade(alembic_config(), revision)


@db_app.command("check")
def check() -> None:
    """Fail if the models and the migrations disagree (``alembic check``)."""
    from alembic import command

    command.check(alembic_config())


@db_app.command("url")
def url() -> None:
    """Print the database URL in use, password hidden."""
    from app.observability.scrub import mask_url

    # Every password: the URL's own and libpq's ?password= / ?sslpassword= parameters.
    typer.echo(mask_url(make_url(resolve_database_url()).render_as_string(hide_password=False)))
