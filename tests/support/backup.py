"""Backup tests' settings: keys, erasure journal and backup folder of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import get_settings


def isolated_backup_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """age keys (made on first use), the erasure journal and BACKUP_DIR under tmp_path.

    For a fixture: ``yield from isolated_backup_env(tmp_path, monkeypatch)``.
    """
    keys = tmp_path / "keys"
    monkeypatch.setenv("BACKUP_AGE_RECIPIENTS_FILE", str(keys / "recipients.txt"))
    monkeypatch.setenv("BACKUP_AGE_IDENTITY_FILE", str(keys / "identity.txt"))
    monkeypatch.setenv("ERASURE_JOURNAL_DIR", str(tmp_path / "journal"))
    monkeypatch.setenv("BACKUP_DIR", str(tmp_path / "backups"))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
