"""Fixtures of the security tests: audited rows, superuser tampering, per-service roles.

Tampering "as a superuser" uses ``session_replication_role = replica`` (superuser only),
which keeps every ordinary trigger out: what someone with the server's keys could do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from app.maintenance import roles
from tests.support.factories import create_check, create_customer

NAMES = roles.RoleNames.for_prefix(f"pn_s{os.getpid()}")


@pytest.fixture
def audited(session: Session) -> Session:
    """Three committed statements: a customer, two checks (one statement), an update."""
    customer = create_customer(session)
    session.commit()
    create_check(session, customer)
    session.execute(
        text(
            "INSERT INTO daily_balance_checks (customer_id, check_date, balance,"
            " passes_threshold, check_timestamp) VALUES (:c, '2026-10-02', 1, false, now()),"
            " (:c, '2026-10-03', 2, false, now())"
        ),
        {"c": customer.id},
    )
    session.commit()
    session.execute(text("UPDATE daily_balance_checks SET balance = balance + 1"))
    session.commit()
    return session


def tamper(engine: Engine, sql: str, **params: object) -> None:
    """Run ``sql`` as the superuser with every trigger out of the way."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)


@pytest.fixture
def superuser(db: Engine) -> Iterator[Engine]:
    yield db


@pytest.fixture(scope="module")
def service_roles(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`db roles --logins`: every service's group and login (password files)."""
    folder: Path = tmp_path_factory.mktemp("logins")
    for service in roles.SERVICE_GRANTS:
        (folder / service).write_text(f"pw-{service}\n")
    with Session(engine) as s, s.begin():
        roles.apply(s, NAMES, logins=folder)
    yield
    with Session(engine) as s, s.begin():
        database = s.scalar(text("SELECT current_database()"))
        s.execute(text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))
        roles.drop(s, NAMES)


LoginFactory = Callable[[str], Engine]


@pytest.fixture
def login(db: Engine, service_roles: None, database_url: str) -> Iterator[LoginFactory]:
    """An engine logged in as a service's own login (session_user is that login)."""
    made: list[Engine] = []

    def make(service: str) -> Engine:
        url = make_url(database_url).set(username=NAMES.login(service), password=f"pw-{service}")
        made.append(create_engine(url, poolclass=NullPool))
        return made[-1]

    yield make
    for engine in made:
        engine.dispose()
