"""The CLI's one error-handling layer: exit codes, and one line per failure.

``app.cli.main`` runs every command through ``run``; commands raise and never print
their own tracebacks or pick their own codes for infrastructure failures. What an
operator can fix (a bad argument or setting, a file that is not there, a database or
Redis that cannot be reached, a stage whose source is not configured) is one line on
stderr and exit status 2; anything else is an internal failure, one line and status 1.
``--debug`` or ``PN_DEBUG=1`` prints the traceback as well. README "Exit codes".
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape


class ExitCode(IntEnum):
    """Documented in the README; scripts and cron jobs rely on them."""

    OK = 0  # done; nothing rejected or skipped
    INTERNAL = 1  # an internal failure (a bug, or the database failing mid-job)
    OPERATOR = 2  # an operator error: bad input or setting, unreachable service; nothing done
    PARTIAL = 3  # done, but input rows were rejected or skipped (see --rejects)
    ATTENTION = 4  # `status --check`: something is failed, stuck or stale


class State:
    debug = False  # set by --debug (the root callback)


def debug_requested() -> bool:
    return State.debug or os.environ.get("PN_DEBUG", "") not in ("", "0")


def _click_error(exc: BaseException) -> str | None:
    # Typer bundles its own copy of click in recent versions: match by class name, as
    # Typer itself does, instead of importing one of the two.
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoArgsIsHelpError" in names:
        return None
    if "ClickException" in names:
        message: str = exc.format_message()  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        return message.replace("\n", " ") + where
    return None


def _database_error(exc: BaseException) -> str | None:
    import psycopg2
    from sqlalchemy.exc import OperationalError

    driver: BaseException | None = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(driver, psycopg2.OperationalError):
        return None
    # Server-side errors (deadlock, cancelled statement) carry an SQLSTATE; a connection
    # that could not be made or was lost has none.
    if driver.pgcode:
        return None
    detail = (str(driver).strip().splitlines() or [type(driver).__name__])[0]
    return f"database unreachable (DATABASE_URL): {detail}"


def _redis_error(exc: BaseException) -> str | None:
    import redis.exceptions

    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return f"Redis unreachable (REDIS_URL): {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _operator_error(exc: BaseException) -> str | None:
    from app.cli.common import UserError
    from app.config import ConfigError
    from app.config_checks import describe_invalid
    from worker.resources import RedisNotConfigured

    if isinstance(exc, UserError | ConfigError | RedisNotConfigured):
        return str(exc)
    if isinstance(exc, ValidationError) and exc.title == "Settings":
        return describe_invalid(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
    for check in _CHECKS:
        message = check(exc)
        if message is not None:
            return message
    return None


_CHECKS: tuple[Callable[[BaseException], str | None], ...] = (
    _click_error,
    _database_error,
    _redis_error,
)


def report(exc: BaseException, err: Console) -> int:
    """Print ``exc`` as one line (and its traceback when asked for); return the exit code."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group called without a command
        exc.show()  # type: ignore[attr-defined]
        return ExitCode.OPERATOR
    if type(exc).__name__ == "Abort" or isinstance(exc, KeyboardInterrupt):
        err.print("aborted: nothing more was done")
        return ExitCode.OPERATOR
    if debug_requested():
        traceback.print_exception(exc, file=sys.stderr)
    message = _operator_error(exc)
    if message is not None:
        err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
        return ExitCode.OPERATOR
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    hint = "" if debug_requested() else " (--debug or PN_DEBUG=1 shows the traceback)"
    err.print(
        f"[bold red]internal error:[/] {escape(type(exc).__name__)}: {escape(first)}{hint}",
        soft_wrap=True,
    )
    return ExitCode.INTERNAL


def run(command: Callable[[], Any], err: Console) -> int:
    """Run ``command`` (the Typer app with ``standalone_mode=False``: no exception handling
    of its own); every failure goes through ``report``. Returns the exit code."""
    try:
        result = command()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else ExitCode.INTERNAL
    except BaseException as exc:  # noqa: B036 - the one place every failure ends up
        return report(exc, err)
    # standalone_mode=False returns a typer.Exit's code, or the command's return value.
    return result if isinstance(result, int) else ExitCode.OK
