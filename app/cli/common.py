"""Helpers shared by the command modules: output formats, errors, progress bars."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app import csvout
from app.maintenance.dlq import BrokerView
from app.months import InvalidMonth, Month

console = Console()
err_console = Console(stderr=True)
VERTICAL_AFTER = 6  # a one-row table with more columns is printed as field / value lines


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


class UserError(Exception):
    """A problem the operator can fix (bad argument, closed month, ...): no traceback."""


def parse_month(text: str, option: str = "--month") -> Month:
    """An operator's ``YYYY-MM`` as the one ``Month`` type; a clean error otherwise."""
    try:
        return Month.parse(text)
    except InvalidMonth as exc:
        raise UserError(f"{option}: {exc}") from None


def broker_view(required: bool = True) -> BrokerView | None:
    """The broker's Redis and queue names, from the worker wing that owns them."""
    from worker.resources import Queue, RedisNotConfigured, redis_client

    try:
        client = redis_client()
    except RedisNotConfigured:
        client = None
    if client is None:
        if required:
            raise UserError("REDIS_URL is not set: the queues live in the broker's Redis")
        return None
    return BrokerView(client, tuple(q.value for q in Queue))


def require_input(path: Path) -> None:
    """An input file that exists and can be read (else one line, exit 2)."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise UserError(f"{path}: not readable")


def require_writable(path: Path | None, option: str) -> None:
    """An output path the command will be able to write (checked before any side effect)."""
    if path is None:
        return
    folder = path.parent
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory")
    if not folder.is_dir():
        raise UserError(f"{option} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path}: not writable")


def require_redis() -> None:
    """When this process uses Redis (REDIS_URL: shared rate limits, the broker), make sure
    it answers before a job writes anything; an unreachable one is an operator error."""
    from worker.resources import RedisNotConfigured, redis_client

    try:
        client = redis_client()
    except RedisNotConfigured:
        return
    if client is not None:
        client.ping()


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def _plain(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    return value


def emit_rows(
    rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: OutputFormat, title: str = ""
) -> None:
    """Print rows as a rich table, JSON (a list of objects) or CSV (with a header)."""
    if fmt is OutputFormat.JSON:
        typer.echo(
            json.dumps([{c: _plain(r.get(c)) for c in columns} for r in rows], ensure_ascii=False)
        )
    elif fmt is OutputFormat.CSV:
        buffer = io.StringIO()
        writer = csvout.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_cell(r.get(c)) for c in columns])
        typer.echo(buffer.getvalue(), nl=False)
    elif len(rows) == 1 and len(columns) > VERTICAL_AFTER:
        # One wide summary row reads better (and fits 80 columns) as field / value lines.
        table = Table(title=title or None)
        table.add_column("field")
        table.add_column("value")
        for c in columns:
            value = rows[0].get(c)
            table.add_row(c, "" if value is None else str(_csv_cell(value)))
        console.print(table)
    else:
        table = Table(title=title or None)
        for c in columns:
            table.add_column(c)
        for r in rows:
            table.add_row(*("" if r.get(c) is None else str(_csv_cell(r.get(c))) for c in columns))
        console.print(table)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _plain(value)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Any]:
    """A rich progress bar; yields ``advance(n)``. Quiet when stdout is not a terminal."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal,
    ) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.update(task, advance=n)

        yield advance


def operator() -> str:
    """Who a command acts as: ``cli:<database login>`` (never ``$USER``). If the database
    cannot be asked now, ``cli``: the audit functions record ``cli:<session_user>`` anyway."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.db.audit import CLI, operator_label

    try:
        return operator_label()
    except SQLAlchemyError:
        return CLI
