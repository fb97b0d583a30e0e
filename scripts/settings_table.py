"""Print the README's configuration table from app/config/ (the single source).

    python scripts/settings_table.py > /tmp/table.md
"""

from __future__ import annotations

from pathlib import Path

from app.config import PROJECT_ROOT, Settings


def rows() -> list[str]:
    out = ["| setting | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):
            default = str(default).replace(str(PROJECT_ROOT) + "/", "")
        shown = "unset" if default is None else str(default)
        meaning = (field.description or "").replace("|", "/")
        out.append(f"| `{name.upper()}` | `{shown}` | {meaning} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
