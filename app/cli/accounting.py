"""What the import commands share: every input row accounted for, and the paths checked first.

An import prints the same counts in its table (stdout), in one summary line on stderr
and in its ``job_runs`` row; up to ``SHOWN`` rejected or skipped rows and warnings on
stderr (all of them in the ``--rejects`` / ``--warnings`` files); and exits 3
(``ExitCode.PARTIAL``) when rows were rejected or skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import typer

from app import csvout
from app.cli.common import err_console
from app.cli.errors import ExitCode

SHOWN = 20


class Note(Protocol):
    """A rejected or skipped row, or a warning (read-only: frozen dataclasses qualify)."""

    @property
    def line(self) -> int: ...
    @property
    def account_number(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def outcome(self) -> str: ...


def show(notes: Sequence[Note], hint: str) -> None:
    """The first ``SHOWN`` notes on stderr, one line each; how many more, and where."""
    for n in notes[:SHOWN]:
        where = f"line {n.line}" if n.line else "extract"
        err_console.print(
            f"{where}: {n.outcome}: {n.reason} (account {n.account_number or '?'})",
            markup=False,
            soft_wrap=True,
        )
    if len(notes) > SHOWN:
        err_console.print(f"... and {len(notes) - SHOWN} more ({hint})", markup=False)


def summary(what: str, counts: dict[str, int]) -> None:
    """One line on stderr: ``customers: 12 rows = 10 accepted + 1 rejected + 1 skipped``."""
    rest = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in _EQUATION)
    err_console.print(
        f"{what}: {counts['rows']} rows = {counts['accepted']} accepted + "
        f"{counts['rejected']} rejected + {counts['skipped']} skipped"
        + (f"; {rest}" if rest else ""),
        markup=False,
        soft_wrap=True,
    )


_EQUATION = ("rows", "accepted", "rejected", "skipped")


def exit_code(counts: dict[str, int]) -> None:
    """Exit 3 when rows were rejected or skipped (the job itself is done)."""
    if counts["rejected"] or counts["skipped"]:
        raise typer.Exit(ExitCode.PARTIAL)


def write_notes(path: Path, notes: Sequence[Note]) -> None:
    """The ``--rejects`` file: line, account_number, outcome (rejected/skipped), reason."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csvout.writer(handle)
        writer.writerow(["line", "account_number", "outcome", "reason"])
        writer.writerows([n.line, n.account_number, n.outcome, n.reason] for n in notes)
