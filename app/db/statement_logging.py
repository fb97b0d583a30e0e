"""What the server may log of the application's statements: never a personal value.

psycopg2 interpolates parameters on the client, so the server sees literals: a statement
logged by ``log_statement``, ``log_min_duration_statement`` (compose: 5 s), or as the
``STATEMENT:`` of an error (``log_min_error_statement``), or an error's ``DETAIL``
(``Key (phone_number)=(+9725...) already exists``) would put phone numbers, names and
balances (an erased customer's too) into the server log and its shipped copies.

The choice: the application's login roles get, per role (``ALTER ROLE ... SET``), no
statement logging at all and terse errors. These parameters are superuser-only, so an
application session cannot turn them back on. Slow statements are diagnosed with
``pg_stat_statements`` (compose preloads it), which stores statements with their
constants replaced by ``$n``. Server-side binding was not chosen: psycopg2 has none, and
a driver change touches every query of the system.

``db roles --logins`` (app/maintenance/roles.py) applies :func:`apply_role_settings` to
every login role it creates when it runs as a superuser (compose's roles step);
tests/platform/test_security_smaller.py shows that the server log of a cluster logging
everything keeps no value from such a role.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg2 import sql

# Parameter -> value, for every application login role.
ROLE_LOGGING = {
    "log_statement": "none",
    "log_min_duration_statement": "-1",
    "log_min_error_statement": "panic",
    "log_error_verbosity": "terse",
    "log_parameter_max_length_on_error": "0",
}


def role_settings_sql(role: str) -> list[sql.Composed]:
    """``ALTER ROLE <role> SET ...`` for each of :data:`ROLE_LOGGING` (run as superuser)."""
    return [
        sql.SQL("ALTER ROLE {} SET {} = {}").format(
            sql.Identifier(role), sql.Identifier(name), sql.Literal(value)
        )
        for name, value in ROLE_LOGGING.items()
    ]


def apply_role_settings(admin: Any, roles: Iterable[str]) -> None:
    """Apply :data:`ROLE_LOGGING` to ``roles`` on a DB-API connection of a superuser."""
    with admin.cursor() as cur:
        for role in roles:
            for statement in role_settings_sql(role):
                cur.execute(statement)
