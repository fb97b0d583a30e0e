"""Query helpers for assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session


def count(session: Session, sql: str, **params: Any) -> int:
    session.expire_all()
    return int(session.execute(text(sql), params).scalar_one())


def all_text(session: Session) -> str:
    """Every text, varchar and json(b) column of every table, as one big string."""
    columns = session.execute(
        text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN "
            "('text', 'character varying', 'json', 'jsonb')"
        )
    ).all()
    parts = []
    for table, column in columns:
        parts += [
            str(v)
            for v in session.scalars(text(f'SELECT "{column}"::text FROM "{table}"'))
            if v is not None
        ]
    return "\n".join(parts)
