"""Guards of the architecture (README, "Architecture"): each rule fails naming file and line.

* SQL lives in repositories (``repository.py`` or a ``repository/`` package), the
  database kernel (``app/db``), the schema (``app/models``) and the migrations; services,
  actors and the CLI call repository functions.
* ``app/`` does not know about the task queue: outside the CLI (which enqueues) it
  imports neither ``dramatiq``, ``periodiq`` nor ``worker``.
* Production code imports nothing from the tooling package (``app/devtools``: the
  demo, the simulators, fault injection); only the CLI's composition root may load its
  commands.
* Modules (and scripts) stay under 400 lines; actors stay thin (at most 30 lines each).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("app", "worker")
MAX_MODULE_LINES = 400
MAX_ACTOR_LINES = 30

# Query-building names: importing them is writing SQL.
SQL_NAMES = {
    "text", "select", "insert", "update", "delete", "func", "and_", "or_", "not_",
    "literal", "literal_column", "bindparam", "case", "exists", "union_all", "tuple_",
}  # fmt: skip
# Methods that send SQL to the server (with an argument: a Redis pipeline's bare
# ``execute()`` is not SQL); a DB-API ``cursor()`` takes none.
SQL_METHODS = {
    "execute",
    "scalars",
    "scalar",
    "exec_driver_sql",
    "copy_expert",
    "copy_from",
    "query",
}
CURSOR_METHODS = {"cursor"}


def _modules(*tops: str) -> Iterator[Path]:
    for top in tops:
        yield from sorted(p for p in (ROOT / top).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _may_hold_sql(path: Path) -> bool:
    rel = _rel(path)
    return (
        path.name == "repository.py"
        or "repository" in path.parent.parts[len(ROOT.parts) :]
        or rel.startswith(("app/db/", "app/models/"))
    )


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]


def sql_outside_repositories(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        if _may_hold_sql(path):
            continue
        tree = _tree(path)
        for line, module, names in _imports(tree):
            if module.split(".")[0] == "sqlalchemy" and SQL_NAMES & set(names):
                found.append(f"{_rel(path)}:{line}: imports {sorted(SQL_NAMES & set(names))}")
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            sends_sql = node.func.attr in SQL_METHODS and (node.args or node.keywords)
            if sends_sql or node.func.attr in CURSOR_METHODS:
                found.append(f"{_rel(path)}:{node.lineno}: .{node.func.attr}(...)")
    return found


def test_sql_lives_in_repositories() -> None:
    paths = [p for p in _modules(*PRODUCT)]
    assert sql_outside_repositories(paths) == []


def test_the_sql_guard_catches_a_query_in_a_service(tmp_path: Path) -> None:
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        service = tmp_path / "app" / "stage" / "service.py"
        service.parent.mkdir(parents=True)
        service.write_text(
            "from sqlalchemy import text\n\ndef f(s):\n    return s.execute(text('SELECT 1'))\n"
        )
        repo = tmp_path / "app" / "stage" / "repository.py"
        repo.write_text(service.read_text())
        assert sql_outside_repositories([service, repo]) == [
            "app/stage/service.py:1: imports ['text']",
            "app/stage/service.py:4: .execute(...)",
        ]
    finally:
        ROOT = saved


def test_app_does_not_import_the_task_queue() -> None:
    found = []
    for path in _modules("app"):
        rel = _rel(path)
        if rel.startswith(("app/cli/", "app/devtools/")):
            continue  # the CLI enqueues; the demo drives the real actors
        for line, module, _ in _imports(_tree(path)):
            if module.split(".")[0] in {"dramatiq", "periodiq", "worker"}:
                found.append(f"{rel}:{line}: imports {module}")
    assert found == []


def test_production_imports_nothing_from_the_tooling() -> None:
    found = []
    for path in _modules(*PRODUCT):
        rel = _rel(path)
        if rel.startswith("app/devtools/") or rel == "app/cli/main.py":
            continue  # the tooling itself; the CLI's composition root loads its commands
        for line, module, _ in _imports(_tree(path)):
            if module == "app.devtools" or module.startswith("app.devtools."):
                found.append(f"{rel}:{line}: imports {module}")
    assert found == []


# Temporarily larger, with the reason; each entry is a debt with a plan.
OVERSIZED: dict[str, str] = {}  # path -> why it may exceed the limit (none today)


def test_modules_stay_small() -> None:
    found = []
    for path in _modules(*PRODUCT, "scripts"):
        if _rel(path) in OVERSIZED:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{_rel(path)}: {lines} lines (max {MAX_MODULE_LINES})")
    assert found == []


def _is_actor(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "actor":
            return True
    return False


def test_actors_are_thin() -> None:
    found, actors = [], 0
    for path in _modules("worker/actors"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef) and _is_actor(node):
                actors += 1
                start = min(d.lineno for d in node.decorator_list)
                lines = (node.end_lineno or node.lineno) - start + 1
                if lines > MAX_ACTOR_LINES:
                    found.append(f"{_rel(path)}:{start}: {node.name} is {lines} lines")
    assert actors >= 10  # the guard must see the actors to mean anything
    assert found == []


def test_documents_cited_in_code_exist() -> None:
    """Comments point to documents in the repository (docs/), never to one outside it."""
    import re

    outside = "DESIGN" + ".md"  # the team's design note outside the repository
    cited = re.compile(r"\b(docs/[\w./-]+\.md|" + re.escape(outside) + ")")
    found, seen = [], 0
    for path in _modules(*PRODUCT, "scripts", "tests", "alembic"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for doc in cited.findall(line):
                seen += 1
                if doc == outside or not (ROOT / doc).is_file():
                    found.append(f"{_rel(path)}:{number}: cites {doc}, not in the repository")
    assert seen > 10  # the scan must meet the citations to mean anything
    assert found == []
