"""Query helpers for assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def count(session: Session, sql: str, **params: Any) -> int:
    session.expire_all()
    return int(session.execute(text(sql), params).scalar_one())
