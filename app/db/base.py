"""Declarative base with a naming convention, so constraint names are stable.

The convention mirrors PostgreSQL's own default names, which is what the seed's DDL
would produce; indexes and CHECK constraints are always named explicitly after the seed.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import MetaData, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "ck": "%(constraint_name)s",
    "ix": "%(table_name)s_%(column_0_N_name)s_idx",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def uuid_pk(*, time_ordered: bool = False) -> Mapped[uuid.UUID]:
    """``id UUID PRIMARY KEY DEFAULT gen_random_uuid()`` as in every seed table.

    ``time_ordered``: ``DEFAULT uuid_generate_v7()`` instead (migration 0002), for the
    tables written in bulk (``TIME_ORDERED_ID_TABLES`` in that migration).
    """
    default = func.uuid_generate_v7() if time_ordered else func.gen_random_uuid()
    return mapped_column(UUID(as_uuid=True), primary_key=True, server_default=default)


def created_at() -> Mapped[datetime]:
    """``created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP`` (UTC sessions)."""
    return mapped_column(nullable=False, server_default=text("CURRENT_TIMESTAMP"))
