"""Alembic environment: one transaction per migration, a lock timeout, the app's URL."""

from __future__ import annotations

import re
from logging.config import fileConfig

from sqlalchemy import pool, text

from alembic import context
from app.db.session import build_engine, resolve_database_url
from app.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata

# Monthly partitions (<table>_pYYYYMM, migration 0009) are made at run time by the
# partition kick; the models describe their partitioned parents only.
_PARTITION = re.compile(r"^(daily_balance_checks|audit_log|system_events)_p\d{6}$")


def _include_object(obj: object, name: str | None, type_: str, reflected: bool, _: object) -> bool:
    return not (type_ == "table" and reflected and name and _PARTITION.match(name))


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or resolve_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # handed in by the tests or the CLI
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or resolve_database_url()
    engine = build_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        transaction_per_migration=True,
        compare_type=True,
        compare_server_default=True,
        include_object=_include_object,
    )
    # Never queue behind a long transaction holding a lock in production.
    connection.execute(text("SET lock_timeout = '10s'"))  # type: ignore[attr-defined]
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
