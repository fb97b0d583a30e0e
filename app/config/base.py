"""What every settings group shares: the project root, the secret-file convention, the error.

Every secret may be given as ``<NAME>_FILE`` pointing at a file that holds it (the Docker
secrets convention).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Settings that may be supplied as <NAME>_FILE (Docker secrets). DATABASE_URL and
# REDIS_URL are included because they usually carry a password.
SECRET_FILE_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "SENTRY_DSN",
    "CORE_BANKING_API_TOKEN",
    "BACKUP_CIPHER_PASS",
    "BROKER_SIGNING_KEY",
)


class ConfigError(ValueError):
    """A setting is missing or malformed. The message never contains a secret."""


def read_secret_files(values: dict[str, Any]) -> dict[str, Any]:
    for name in SECRET_FILE_SETTINGS:
        file_var = f"{name}_FILE"
        path = values.pop(file_var.lower(), None) or os.environ.get(file_var)
        if not path or values.get(name.lower()):
            continue
        try:
            values[name.lower()] = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # Name the variable and the path, never the contents.
            raise ConfigError(f"{file_var}: cannot read {path}: {exc.strerror}") from None
    return values
