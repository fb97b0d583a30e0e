"""PostgreSQL clusters of their own for the recovery drill, the failover test and the
backup tests: never the machine's shared server.

* ``Pg15``: ``chaos_servers.OwnPostgres`` on the machine's PostgreSQL 15
  (``/usr/lib/postgresql/15/bin``, the production major version), with a private Unix
  socket (pgBackRest reaches its cluster through the socket only) and extra settings.
* ``BackRest``: a pgBackRest repository, log and lock folder for one cluster, with the
  configuration production uses (``app.maintenance.pgbackrest.render_config``) and an
  encrypted repository.
* ``StandbyPair``: a primary and a synchronous streaming standby (pg_basebackup), a
  multi-host URL (``target_session_attrs=read-write``), kill and promote.

Everything listens on 127.0.0.1 and free ports; data lives in the caller's folder.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg2
from chaos_servers import OwnPostgres

from app.maintenance.pgbackrest import Layout, PgBackRest, archive_settings, render_config

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
STANZA = "premium"


class Pg15(OwnPostgres):
    """A throwaway PostgreSQL 15 cluster with a private socket folder and extra settings."""

    def __init__(self, workdir: Path, bin_dir: Path = PG15_BIN) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)
        self.bin = bin_dir
        self.workdir = workdir
        self.socket_dir = workdir / "sock"
        self.env: dict[str, str] = dict(os.environ)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]], check=True, timeout=timeout, env=self.env,
            user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def own(self, path: Path) -> None:
        """Give ``path`` to the cluster's OS user (when running as root)."""
        self._own(path)

    def init_with(self, settings: Mapping[str, str] | None = None) -> None:
        """initdb, then a private socket folder and ``settings`` in postgresql.conf."""
        self.workdir.chmod(0o755)
        self.init()
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        self._own(self.socket_dir)
        self.configure({"unix_socket_directories": str(self.socket_dir), **(settings or {})})

    def configure(self, settings: Mapping[str, str]) -> None:
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            for key, value in settings.items():
                escaped = value.replace("'", "''")
                conf.write(f"{key} = '{escaped}'\n")

    def admin(self, database: str = "postgres") -> Any:
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres",
                                dbname=database, connect_timeout=5)
        conn.autocommit = True
        return conn

    def ctl(self, *args: str, timeout: float = 120) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), *args, timeout=timeout)


class BackRest:
    """A pgBackRest repository for ``cluster`` with production's policy, encrypted."""

    def __init__(self, cluster: Pg15, root: Path, stanza: str = STANZA) -> None:
        self.cluster = cluster
        self.root = root
        self.config = root / "pgbackrest.conf"
        self.repo = root / "repo"
        self.cipher_pass = secrets.token_urlsafe(24)
        self.stanza = stanza
        for folder in (root, self.repo, root / "log", root / "lock", root / "spool"):
            folder.mkdir(mode=0o750, parents=True, exist_ok=True)
            cluster.own(folder)
        layout = Layout(
            stanza=stanza,
            pg_path=cluster.pgdata,
            socket_path=cluster.socket_dir,
            repo_paths={1: self.repo},
            log_path=root / "log",
            lock_path=root / "lock",
            spool_path=root / "spool",
            pg_port=cluster.port,
        )
        self.config.write_text(render_config(layout))
        cluster.own(self.config)
        self.pgbr = PgBackRest(stanza, self.config, self.cipher_pass, user=cluster.user)
        # The server runs archive-push (and, restored, archive-get): it needs the passphrase.
        cluster.env.update({k: v for k, v in self.pgbr.env().items() if k.startswith("PGBACKREST")})

    def server_settings(self, archive_timeout: int | None = None) -> dict[str, str]:
        """Production's archiving settings; ``archive_timeout`` only for the short drill."""
        values = archive_settings(self.stanza, self.config)
        if archive_timeout is not None:
            values["archive_timeout"] = str(archive_timeout)
        return values

    def share_with(self, other: Pg15) -> None:
        """``other`` archives into this repository too (a standby, once promoted)."""
        other.env.update({k: v for k, v in self.cluster.env.items() if k.startswith("PGBACKREST")})

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.repo.rglob("*") if p.is_file())


class StandbyPair:
    """A primary and a synchronous streaming standby, reached through one multi-host URL."""

    def __init__(
        self, root: Path, database: str, server: Callable[[Path], OwnPostgres] = OwnPostgres
    ) -> None:
        (root / "a").mkdir(exist_ok=True)
        (root / "b").mkdir(exist_ok=True)
        self.database = database
        self.primary, self.standby = server(root / "a"), server(root / "b")

    def start(self, prepare_primary: Callable[[OwnPostgres], None] | None = None) -> None:
        p, s = self.primary, self.standby
        if prepare_primary is not None:
            prepare_primary(p)  # initdb and configuration (archiving, for the drill)
        else:
            p.init()
        p.start()
        s.pgdata.parent.chmod(0o755)
        p._own(s.pgdata.parent)
        p._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(p.port), "-U", "postgres",
               "-D", str(s.pgdata), "-R", "-X", "stream")
        with (s.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {s.port}\n")
            if isinstance(s, Pg15):
                conf.write(f"unix_socket_directories = '{s.pgdata.parent / 'sock'}'\n")
        if isinstance(s, Pg15):
            s.socket_dir.mkdir(mode=0o700, exist_ok=True)
            s.own(s.socket_dir)
        s.start()
        conn = psycopg2.connect(host="127.0.0.1", port=p.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        cur = conn.cursor()
        for _ in range(100):  # the standby streams before commits wait for it
            cur.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")
            row = cur.fetchone()
            if row and row[0]:
                break
            time.sleep(0.1)
        # Synchronous: a commit returns only once the standby has it (RPO zero).
        cur.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        cur.execute("SELECT pg_reload_conf()")
        cur.execute(f'CREATE DATABASE "{self.database}"')
        conn.close()

    def url(self) -> str:
        hosts = f"host=127.0.0.1:{self.primary.port}&host=127.0.0.1:{self.standby.port}"
        return (
            f"postgresql+psycopg2://postgres@/{self.database}?{hosts}"
            "&target_session_attrs=read-write"
        )

    def kill_primary(self) -> None:
        self.primary.stop("immediate")  # the primary dies: no checkpoint, no goodbye

    def promote(self) -> None:
        self.standby._run("pg_ctl", "-D", str(self.standby.pgdata), "-w", "promote")

    def fail_over(self) -> None:
        self.kill_primary()
        self.promote()

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            try:
                server.stop("immediate")
            except subprocess.CalledProcessError:
                pass  # already down


def migrate_and_seed(url: str, customers: int) -> None:
    """The failover scenarios' database: migrated, ``customers`` active customers with
    valid mobiles (account numbers FO1..FOn)."""
    from sqlalchemy import text

    from alembic import command
    from app.cli.db import alembic_config
    from app.db.session import build_engine

    config = alembic_config(url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    engine = build_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO customers (account_number, first_name, last_name, phone_number, "
                "is_active, phone_status, phone_is_valid_mobile) SELECT 'FO' || g, 'Dana', "
                "'Levi', '+97252' || lpad(g::text, 7, '0'), true, 'MOBILE', true "
                "FROM generate_series(1, :n) g"
            ),
            {"n": customers},
        )
    engine.dispose()
