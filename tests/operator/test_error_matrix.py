"""Every command x {database down, Redis down, invalid setting, missing file, unwritable
output}: one line on stderr, no traceback, the documented exit code (README "Exit codes").

The real ``premium-notify`` entry point runs in a subprocess for each combination. A
combination that does not apply (a command that never touches Redis, reads no file...)
is a skipped parameter with the reason. The subprocesses run concurrently once per
session (``outcomes``); each test asserts on its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
import typer

from app.cli.main import cli
from app.months import Month

TODAY = date.today()
DAY = (TODAY - timedelta(days=10)).isoformat()
MONTH = str(Month.of(TODAY).previous())
DB_DOWN = "postgresql://postgres@127.0.0.1:1/nowhere"
REDIS_DOWN = "redis://127.0.0.1:1/0"
MISSING = "/no/such/file.csv"
UNWRITABLE = "/no/such/dir/out.csv"
ENTRY = shutil.which("premium-notify")


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    db: str | None = None  # why it does not touch the database (None: it does)
    redis: str | None = "does not use Redis"  # None: it does
    missing: tuple[str, ...] | None = None  # argv reading a file that is not there
    unwritable: tuple[str, ...] | None = None  # argv writing where it cannot
    extra: dict[str, str] = field(default_factory=dict)


CUSTOMERS = "{files}/customers.csv"
EXTRACT = "{files}/eod.csv"
DUMP = "{files}/backup.dump"
SERVER = "a local server: touches no database"
BROKER_ONLY = "only hands a message to the broker: the worker reads the database"
NO_FILE = "reads no file"
PGBACKREST = "pgBackRest reaches the cluster through its own configuration, not DATABASE_URL"

COMMANDS: dict[str, Command] = {
    "status": Command(("status",), redis=None),
    "demo": Command(
        ("demo", "--customers", "5", "--workdir", "{files}/demo"),
        unwritable=("demo", "--customers", "5", "--summary-json", UNWRITABLE),
    ),
    "run balance-checks": Command(
        ("run", "balance-checks", "--date", DAY, "--source", f"file:{EXTRACT}"),
        missing=("run", "balance-checks", "--date", DAY, "--source", f"file:{MISSING}"),
    ),
    "run gap-repair": Command(
        ("run", "gap-repair", "--start", DAY, "--end", DAY, "--source", f"file:{EXTRACT}"),
        missing=("run", "gap-repair", "--start", DAY, "--end", DAY, "--source", f"file:{MISSING}"),
    ),
    "run qualification": Command(("run", "qualification", "--month", MONTH)),
    "run notifications": Command(("run", "notifications", "--month", MONTH), redis=None),
    "run retention": Command(
        (
            "run",
            "retention",
        )
    ),
    "run delivery-poll": Command(
        (
            "run",
            "delivery-poll",
        ),
        redis=None,
    ),
    "enqueue balance-checks": Command(("enqueue", "balance-checks", "--date", DAY), redis=None),
    "enqueue qualification": Command(
        ("enqueue", "qualification", "--month", MONTH), db=BROKER_ONLY, redis=None
    ),
    "enqueue notifications": Command(
        ("enqueue", "notifications", "--month", MONTH), db=BROKER_ONLY, redis=None
    ),
    "enqueue retention": Command(("enqueue", "retention"), db=BROKER_ONLY, redis=None),
    "enqueue delivery-poll": Command(("enqueue", "delivery-poll"), db=BROKER_ONLY, redis=None),
    "report qualifications": Command(("report", "qualifications", "--month", MONTH)),
    "report month": Command(("report", "month", "--month", MONTH)),
    "report progress": Command(("report", "progress", "--month", MONTH)),
    "report failures": Command(("report", "failures", "--month", MONTH)),
    "simulate core-banking": Command(("simulate", "core-banking", "--port", "1"), db=SERVER),
    "simulate carrier": Command(("simulate", "carrier", "--port", "1"), db=SERVER),
    "db upgrade": Command(("db", "upgrade")),
    "db check": Command(("db", "check")),
    "db url": Command(("db", "url"), db="prints the URL without connecting"),
    "db roles": Command(("db", "roles")),
    "db backup": Command(("db", "backup"), db=PGBACKREST),
    "db backups": Command(("db", "backups"), db=PGBACKREST),
    "db export": Command(
        ("db", "export", "--dir", "{files}/exports"),
        unwritable=("db", "export", "--dir", "/proc/no/such/dir"),
    ),
    "db pitr": Command(("db", "pitr", "--pgdata", "{files}/pitr"), db=PGBACKREST),
    "db erasures": Command(("db", "erasures"), db="reads the erasure journal, not the database"),
    "db restore": Command(
        ("db", "restore", DUMP, "--target-db", "pn_matrix_restore"),
        missing=("db", "restore", "/no/such/backup.dump", "--target-db", "pn_matrix_restore"),
    ),
    "customers import": Command(
        ("customers", "import", CUSTOMERS),
        missing=("customers", "import", MISSING),
        unwritable=("customers", "import", CUSTOMERS, "--rejects", UNWRITABLE),
    ),
    "balances import": Command(
        ("balances", "import", EXTRACT, "--date", DAY),
        missing=("balances", "import", MISSING, "--date", DAY),
        unwritable=("balances", "import", EXTRACT, "--date", DAY, "--rejects", UNWRITABLE),
    ),
    "sms preview": Command(("sms", "preview", "--template", "en", "--account", "A1")),
    "sms pause": Command(("sms", "pause", "--reason", "matrix")),
    "sms resume": Command(("sms", "resume")),
    "dlq list": Command(("dlq", "list"), db="reads the broker only", redis=None),
    "dlq replay": Command(
        ("dlq", "replay", "--all"), db="nothing replayed, nothing to record", redis=None
    ),
    "dlq purge": Command(
        ("dlq", "purge", "--all", "--yes"), db="nothing purged, nothing to record", redis=None
    ),
    "gdpr export": Command(
        ("gdpr", "export", "--account", "A1"),
        unwritable=("gdpr", "export", "--account", "A1", "--output", UNWRITABLE),
    ),
    "gdpr erase": Command(("gdpr", "erase", "--account", "A1")),
    "audit verify": Command(("audit", "verify"), missing=("audit", "verify", "--heads", MISSING)),
    "archive query": Command(
        ("archive", "query", "SELECT 1"), db="reads cold storage only, never the database"
    ),
    "serve callbacks": Command(
        ("serve", "callbacks", "--port", "1"),
        db=SERVER,
        extra={"CALLBACK_PUBLIC_URL": "https://bank.example/callbacks"},
    ),
}

CONDITIONS = ("database down", "Redis down", "invalid setting", "missing file", "unwritable output")
EXPECTED = {
    "database down": "database unreachable (DATABASE_URL)",
    "Redis down": "Redis unreachable (REDIS_URL)",
    "invalid setting": "invalid setting BANK_TIMEZONE: unknown time zone",
    "missing file": "/no/such/",
    "unwritable output": "/no/such/dir",
}


def _skip_reason(command: Command, condition: str) -> str | None:
    if condition == "database down":
        return command.db
    if condition == "Redis down":
        return command.redis
    if condition == "missing file" and command.missing is None:
        return NO_FILE
    if condition == "unwritable output" and command.unwritable is None:
        return "writes no file"
    return None


def _cases() -> Iterator[object]:
    for name, command in COMMANDS.items():
        for condition in CONDITIONS:
            reason = _skip_reason(command, condition)
            marks = [pytest.mark.skip(reason=reason)] if reason else []
            yield pytest.param(name, condition, marks=marks, id=f"{name}-{condition}")


def _argv_env(
    name: str, condition: str, files: Path, database_url: str
) -> tuple[list[str], dict[str, str]]:
    command = COMMANDS[name]
    argv = {"missing file": command.missing, "unwritable output": command.unwritable}.get(
        condition
    ) or command.argv
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PN_", "PROMETHEUS"))}
    for key in ("REDIS_URL", "CORE_BANKING_URL", "BALANCE_SOURCE"):
        env.pop(key, None)
    env.update(
        DATABASE_URL=database_url,
        DRAMATIQ_BROKER="stub",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN="matrix-token",
        TWILIO_FROM="PremiumBank",
        TWILIO_BASE_URL="http://127.0.0.1:9/no-carrier",
        COLUMNS="80",
        **command.extra,
    )
    if condition == "database down":
        env["DATABASE_URL"] = DB_DOWN
    elif condition == "Redis down":
        env.update(REDIS_URL=REDIS_DOWN, DRAMATIQ_BROKER="redis")
    elif condition == "invalid setting":
        env["BANK_TIMEZONE"] = "Mars/Base"
    return [a.replace("{files}", str(files)) for a in argv], env


@pytest.fixture(scope="module")
def outcomes(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, str], subprocess.CompletedProcess[str]]:
    assert ENTRY, "the premium-notify entry point is not installed"
    files = tmp_path_factory.mktemp("matrix")
    (files / "customers.csv").write_text(
        "account_number,first_name,last_name,email,phone_number,account_type,is_active\n"
        "A1,Dana,Levi,,0521234567,premium,true\n",
        encoding="utf-8",
    )
    (files / "eod.csv").write_text(f"account_number,balance,as_of_date\nA1,100.00,{DAY}\n")
    (files / "backup.dump").write_bytes(b"not really a dump")
    cases = [
        (name, condition)
        for name, command in COMMANDS.items()
        for condition in CONDITIONS
        if _skip_reason(command, condition) is None
    ]

    def run(case: tuple[str, str]) -> subprocess.CompletedProcess[str]:
        argv, env = _argv_env(*case, files, database_url)
        return subprocess.run(
            [ENTRY, *argv], env=env, capture_output=True, text=True, timeout=120, cwd=files
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(cases, pool.map(run, cases), strict=True))


def test_the_matrix_covers_every_command() -> None:
    names: set[str] = set()

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, [*path, name])
        else:
            names.add(" ".join(path))

    walk(typer.main.get_command(cli), [])
    assert names == set(COMMANDS)


@pytest.mark.parametrize(("name", "condition"), list(_cases()))
def test_one_line_and_the_documented_code(
    outcomes: dict[tuple[str, str], subprocess.CompletedProcess[str]], name: str, condition: str
) -> None:
    done = outcomes[(name, condition)]
    report = f"{name} / {condition}: exit {done.returncode}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr + done.stdout, report
    if name == "status" and condition == "Redis down":
        # The database half matters most when the broker is down: shown, not fatal.
        assert done.returncode == 0 and "broker:" in done.stdout, report
        return
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, report
    assert len(lines) == 1, report
    assert lines[0].startswith("error: ") and EXPECTED[condition] in lines[0], report


def test_debug_shows_the_traceback(database_url: str, tmp_path: Path) -> None:
    argv, env = _argv_env("report month", "database down", tmp_path, database_url)
    for extra_argv, extra_env in ((["--debug"], {}), ([], {"PN_DEBUG": "1"})):
        done = subprocess.run(
            [ENTRY or "premium-notify", *extra_argv, *argv],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert "Traceback" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("error: database unreachable")
