"""Engine and the unit-of-work scope.

The transaction rule (README, "Architecture"): repositories and services take a
``Session`` and never commit; the caller at the top (an actor, a CLI command) opens
``session_scope()``, which commits or rolls back. A service that must release the
connection around slow I/O (a carrier or core-banking call, a long run made of several
commits) is handed a ``SessionScope`` (``session_scope`` itself, in production) instead,
and says so in its docstring.
Every connection runs with ``timezone=UTC``: the seed's columns are TIMESTAMP without
time zone and ``CURRENT_TIMESTAMP`` must mean UTC in all of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings, get_settings
from app.db.embedded import start_embedded

# A factory of transactions: each call opens one (commit on success, rollback on error).
SessionScope = Callable[[], AbstractContextManager[Session]]

_lock = threading.Lock()
_engine: Engine | None = None
_session_factory: sessionmaker[Session] | None = None
_engine_pid: int | None = None


def resolve_database_url(settings: Settings | None = None) -> str:
    """DATABASE_URL when set, else the embedded server's URL (starting it if needed)."""
    settings = settings or get_settings()
    if settings.database_url is not None:
        url = make_url(settings.database_url.get_secret_value())
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        return url.render_as_string(hide_password=False)
    return start_embedded(settings.embedded_pgdata)


def build_engine(url: str, settings: Settings | None = None, **kwargs: object) -> Engine:
    settings = settings or get_settings()
    options: dict[str, object] = {
        "pool_size": settings.db_pool_size,
        "max_overflow": settings.db_max_overflow,
        "pool_pre_ping": True,
        "connect_args": {
            "options": "-c timezone=UTC",
            "application_name": "premium-notify",
            "connect_timeout": 10,
        },
    }
    options.update(kwargs)
    if "poolclass" in kwargs:  # NullPool etc. take no sizing arguments
        options.pop("pool_size")
        options.pop("max_overflow")
    return create_engine(url, **options)


def get_engine() -> Engine:
    """The process-wide engine; rebuilt in a forked child (pools must not cross a fork)."""
    global _engine, _session_factory, _engine_pid
    with _lock:
        if _engine is None or _engine_pid != os.getpid():
            if _engine is not None:
                _engine.dispose(close=False)
            _engine = build_engine(resolve_database_url())
            _session_factory = sessionmaker(_engine, expire_on_commit=False)
            _engine_pid = os.getpid()
        return _engine


def set_engine(engine: Engine | None) -> None:
    """Use ``engine`` for every later session (tests, the demo); None forgets it."""
    global _engine, _session_factory, _engine_pid
    with _lock:
        _engine = engine
        _session_factory = sessionmaker(engine, expire_on_commit=False) if engine else None
        _engine_pid = os.getpid() if engine else None


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error."""
    get_engine()
    assert _session_factory is not None
    session = _session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
