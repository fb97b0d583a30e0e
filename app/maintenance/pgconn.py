"""A database URL as libpq parameters, for the client tools (pg_dump, pg_restore, psql).

Every parameter of ``DATABASE_URL`` reaches the tools: TLS (``sslmode``,
``sslrootcert``, ``sslcert``, ``sslkey``, ``sslcrl``, ...), several hosts with
``target_session_attrs``, timeouts. They are written to a private libpq service file
(0600, in a 0700 folder, removed afterwards) named by ``PGSERVICEFILE``: nothing goes on
a command line, where every user of the machine could read it in ``ps``, and libpq's
own rules apply unchanged. A parameter dropped here would silently downgrade a
``verify-full`` connection to whatever the defaults are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from sqlalchemy.engine import make_url

SERVICE = "pn"


@dataclass(frozen=True, repr=False)
class Conn:
    """libpq connection parameters (``host`` and ``port`` may list several, comma-separated)."""

    host: str | None
    port: str | None
    user: str | None
    password: str | None
    database: str
    options: Mapping[str, str] = field(default_factory=dict)  # sslmode, sslrootcert, ...

    @classmethod
    def from_url(cls, url: str) -> Conn:
        """Every part of a SQLAlchemy/libpq URL (several hosts as ``?host=h:p&host=...``)."""
        u = make_url(url)
        query = {k: v for k, v in u.query.items()}
        hosts, ports = _hosts(u.host, u.port, query.pop("host", None), query.pop("port", None))
        options = {k: (v if isinstance(v, str) else v[-1]) for k, v in query.items()}
        return cls(
            host=hosts,
            port=ports,
            user=u.username,
            password=u.password if u.password else None,
            database=u.database or "postgres",
            options=options,
        )

    def __repr__(self) -> str:
        # Never the password, nor a libpq option that holds one (sslpassword).
        options = {k: ("***" if "password" in k else v) for k, v in self.options.items()}
        password = "'***'" if self.password else "None"
        return (
            f"Conn(host={self.host!r}, port={self.port!r}, user={self.user!r}, "
            f"password={password}, database={self.database!r}, options={options!r})"
        )

    def with_database(self, database: str) -> Conn:
        """The same connection to another database of the server."""
        return Conn(self.host, self.port, self.user, self.password, database, dict(self.options))

    def params(self) -> dict[str, str]:
        """Every libpq keyword of this connection (the password included)."""
        values: dict[str, str | None] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": self.database,
            **self.options,
        }
        return {k: v for k, v in values.items() if v}

    def url(self) -> str:
        """A SQLAlchemy URL with the same parameters (for a session on this database)."""
        query = {k: v for k, v in self.params().items() if k not in _URL_PARTS}
        if self.host:
            query["host"] = self.host
        if self.port:
            query["port"] = self.port
        from sqlalchemy.engine import URL

        return URL.create(
            "postgresql+psycopg2",
            username=self.user,
            password=self.password,
            database=self.database,
            query=query,
        ).render_as_string(hide_password=False)

    def connect(self) -> Any:
        """A psycopg2 connection with every parameter."""
        params: dict[str, Any] = {"connect_timeout": "10", **self.params()}
        return psycopg2.connect(None, **params)

    @contextmanager
    def tool_env(self, base: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
        """Environment for a libpq client tool: a private service file, no PG* leftovers."""
        folder = Path(tempfile.mkdtemp(prefix="pn-libpq-"))  # 0700
        try:
            service = folder / "pg_service.conf"
            fd = os.open(service, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(self.service_text())
            env = {k: v for k, v in (base or os.environ).items() if not k.startswith("PG")}
            env.update(PGSERVICEFILE=str(service), PGSERVICE=SERVICE)
            yield env
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def service_text(self) -> str:
        """The ``[pn]`` section of a libpq service file with every parameter."""
        lines = [f"[{SERVICE}]"]
        for key, value in self.params().items():
            if "\n" in value or "\r" in value:
                raise ValueError(f"database URL parameter {key} holds a line break")
            lines.append(f"{key}={value}")
        return "\n".join(lines) + "\n"


_URL_PARTS = {"host", "port", "user", "password", "dbname"}


def _hosts(
    host: str | None, port: int | None, q_host: Any, q_port: Any
) -> tuple[str | None, str | None]:
    """``host``/``port`` for libpq from the URL's netloc or its ``?host=h:p&host=...``."""
    if host:
        return host, str(port) if port else None
    if q_host is None:
        return None, str(q_port) if q_port else None
    listed = [q_host] if isinstance(q_host, str) else list(q_host)
    names, ports = [], []
    for item in listed:
        name, sep, item_port = item.rpartition(":") if not item.startswith("/") else ("", "", "")
        if sep and item_port.isdigit():
            names.append(name)
            ports.append(item_port)
        else:
            names.append(item)
            ports.append("")
    if q_port is not None:
        explicit = [q_port] if isinstance(q_port, str) else list(q_port)
        return ",".join(names), ",".join(explicit)
    return ",".join(names), (",".join(ports) if any(ports) else None)
