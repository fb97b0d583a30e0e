"""Settings: types, defaults, *_FILE secrets, and secrets kept out of reprs and errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import Settings

SECRET = "s3cr3t-token-value"


def test_defaults() -> None:
    settings = Settings(_env_file=None)
    assert settings.bank_timezone == "Asia/Jerusalem"
    assert settings.qualification_threshold == Decimal("15000.00")


def test_secret_never_in_repr_or_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://u:{SECRET}@db/x")
    settings = Settings(_env_file=None)
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == SECRET
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert SECRET not in text


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text(SECRET + "\n")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_FILE", str(path))
    settings = Settings(_env_file=None)
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == SECRET


def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN_FILE"):
        Settings(_env_file=None)


def test_invalid_values_do_not_echo_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", SECRET)
    monkeypatch.setenv("BANK_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert "unknown time zone" in str(info.value)
    assert SECRET not in str(info.value)


def test_threshold_has_two_decimals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALIFICATION_THRESHOLD", "15000.001")
    with pytest.raises(ValidationError, match="two decimals"):
        Settings(_env_file=None)
