"""Every ``premium-notify …`` command quoted in the runbooks, docs, README, compose and
the alert annotations exists: parsed from the text, resolved against the Typer CLI (click's
own command lookup), its ``--options`` checked against the command's parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from app.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "docker" / "compose.yaml",
    *sorted((ROOT / "docker" / "prometheus" / "rules").glob("*.yml")),
]
# "premium-notify" as a command word: not premium-notify-worker, premium-notify@1.0, a URL
# path, an image tag or a directory name.
MENTION = re.compile(r"(?<![/\w-])premium-notify(?![\w@:/.-])")
TOKEN = re.compile(r"[A-Za-z0-9<>\[\]_.,=:/+-]+$")


@dataclass(frozen=True)
class Quote:
    source: str
    line: int
    tokens: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: premium-notify {' '.join(self.tokens)}"


def _texts(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a file; for rule files the alert annotations."""
    if path.parent.name == "rules":
        out = []
        raw = path.read_text().splitlines()
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                for text in (rule.get("annotations") or {}).values():
                    number = next(
                        (i + 1 for i, line in enumerate(raw) if text[:40] in line), 0
                    )
                    out.append((number, text))
        return out
    return list(enumerate(path.read_text().splitlines(), start=1))


def quotes() -> list[Quote]:
    found = []
    for path in SOURCES:
        for number, text in _texts(path):
            for match in MENTION.finditer(text):
                rest = re.split(r"[`\"';|()&]|\s-\s|$", text[match.end() :], maxsplit=1)[0]
                tokens: list[str] = []
                for word in rest.split():
                    if not TOKEN.match(word):
                        break
                    tokens.append(word.rstrip(".,:"))
                if tokens:
                    rel = str(path.relative_to(ROOT))
                    found.append(Quote(rel, number, tuple(tokens)))
    return found


def resolve(tokens: tuple[str, ...]) -> str | None:
    """None if the command exists (and its options); else what is wrong."""
    # Typer's own click classes (not click.Group subclasses in every version): duck typing.
    command: Any = typer.main.get_command(cli)
    ctx = command.context_class(command, info_name="premium-notify")
    path = ["premium-notify"]
    for token in tokens:
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            if name not in options | {"--help"}:
                return f"{' '.join(path)} has no option {name}"
            continue
        if not hasattr(command, "list_commands"):
            break  # a leaf: the rest are its arguments or the sentence around it
        sub = command.get_command(ctx, token)
        if sub is None:
            if not re.fullmatch(r"[a-z][a-z-]*", token):
                break  # a placeholder, or prose ("the premium-notify CLI")
            return f"{' '.join(path)} has no command {token!r}"
        path.append(token)
        ctx = sub.context_class(sub, info_name=token, parent=ctx)
        command = sub
    return None


def test_the_parser_finds_the_quoted_commands() -> None:
    found = {q.tokens[:2] for q in quotes()}
    assert ("sms", "resume") in found and ("status",) in {t[:1] for t in found}
    assert resolve(("report", "runs")) == "premium-notify report has no command 'runs'"
    assert resolve(("run", "balances", "--date", "<day>")) is not None
    assert resolve(("run", "balance-checks", "--dat", "x")) is not None
    assert resolve(("run", "balance-checks", "--date", "<day>")) is None


@pytest.mark.parametrize("quote", quotes(), ids=str)
def test_every_quoted_command_exists(quote: Quote) -> None:
    problem = resolve(quote.tokens)
    assert problem is None, f"{quote}: {problem}"
