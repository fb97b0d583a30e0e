"""Hostile and international text is stored verbatim; secrets stay out of errors and reprs.

(The worker role's inability to change or delete audit_log is tested in test_roles.py.)
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.balances.sources.core_banking import CoreBankingSource
from app.customers.importer import import_customers
from app.db.session import build_engine, session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import Customer, Notification
from app.months import Month
from app.notifications.carrier import CarrierClient, CarrierError
from app.notifications.outbox import prepare_month
from tests.support.carrier import MONTH
from tests.support.factories import create_qualification

HOSTILE = [
    ("Robert'); DROP TABLE customers;--", "O'Brien"),
    ("דנה", "כהן-לוי"),
    ("Zoë 🙂", "🦄 Ünïcødé"),
    ("<script>alert(1)</script>", "=HYPERLINK(\"http://x\")"),
    ("%s%n%x", "\\N"),
    ("‏שרה‎", "名前"),
]


def test_hostile_and_international_names_are_stored_and_texted_verbatim(
    session: Session, sms_env: SimulatorThread, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["account_number", "first_name", "last_name", "email", "phone_number",
                      "account_type", "is_active"])  # fmt: skip
        for i, (first, last) in enumerate(HOSTILE):
            out.writerow([f"H{i}", first, last, "", f"+97252{i + 1:07d}", "'; --", "true"])
    report = import_customers(session_scope, path)
    assert report.inserted == len(HOSTILE) and not report.rejected
    stored = {c.account_number: c for c in session.scalars(select(Customer))}
    assert [(stored[f"H{i}"].first_name, stored[f"H{i}"].last_name)
            for i in range(len(HOSTILE))] == HOSTILE  # fmt: skip
    assert {c.account_type for c in stored.values()} == {"'; --"}
    assert session.scalar(text("SELECT count(*) FROM customers")) == len(HOSTILE)  # table intact

    for customer in stored.values():
        create_qualification(session, customer)
    session.commit()
    with session_scope() as s:
        prepare_month(s, Month.of(MONTH))
    texts = {n.customer_id: n.sms_content for n in session.scalars(select(Notification))}
    for customer in stored.values():  # the template names the customer, unaltered
        assert customer.first_name in texts[customer.id]
    # The audit trail of notifications never carries the phone number or the text.
    audit = session.scalars(
        text("SELECT new_values::text FROM audit_log WHERE entity_type = 'Notification'")
    ).all()
    assert audit and not [a for a in audit if "+97252" in a or "DROP TABLE" in a]


def test_database_password_never_in_errors_or_reprs(db: Engine) -> None:
    password = "pw-s3cr3t-9f1c"
    engine = build_engine(
        f"postgresql+psycopg2://nobody:{password}@127.0.0.1:1/none", connect_args={
            "connect_timeout": 2})  # fmt: skip
    assert password not in repr(engine) and password not in str(engine.url)
    with pytest.raises(OperationalError) as caught:
        engine.connect()
    assert password not in str(caught.value) and password not in repr(caught.value)
    engine.dispose()


def test_carrier_and_bank_tokens_never_in_errors_or_reprs(sms_env: SimulatorThread) -> None:
    token = "tw-s3cr3t-41d2"
    client = CarrierClient("AC" + "9" * 32, token, sender="+15005550006",
                           base_url=sms_env.base_url, timeout=2)  # fmt: skip
    with pytest.raises(CarrierError) as caught:  # wrong credentials: 401 from the carrier
        client.send("+972521234567", "hello")
    for text_ in (str(caught.value), repr(caught.value), repr(client), repr(client.client)):
        assert token not in text_
    source = CoreBankingSource("http://127.0.0.1:9", token="cb-s3cr3t-77", max_retries=0)
    assert "cb-s3cr3t-77" not in repr(source)
    with pytest.raises(Exception) as failed:  # nothing listens on port 9
        source.fetch(["A1"], MONTH)
    assert "cb-s3cr3t-77" not in str(failed.value) and "cb-s3cr3t-77" not in repr(failed.value)


def test_tls_settings_reach_the_drivers(db: Engine) -> None:
    """sslmode in DATABASE_URL goes to libpq; rediss:// gives the broker a TLS connection."""
    import redis

    tls = {"sslmode": "verify-full", "sslrootcert": "/etc/pki/bank-ca.pem"}
    url = db.url.set(query={**db.url.query, **tls})
    engine = build_engine(url.render_as_string(hide_password=False))
    _, params = engine.dialect.create_connect_args(engine.url)
    assert {k: params[k] for k in tls} == tls  # handed to libpq as they are
    engine.dispose()

    client = redis.Redis.from_url(
        "rediss://:pw@redis.internal:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem"
    )
    pool = client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert pool.connection_kwargs["ssl_cert_reqs"] == "required"
