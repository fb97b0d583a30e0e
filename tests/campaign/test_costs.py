"""Cost: the carrier's segments and price, from status callbacks and polled messages, in the
month report; a text longer than one segment draws a warning at preview and prepare."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.campaign.costs import Cost
from app.cli.main import cli
from app.config import get_settings
from app.db.session import session_scope
from app.delivery.polling import DeliveryPoller, utcnow
from app.devtools.simulators.carrier import SimulatorThread
from app.models import Notification, SystemEvent
from app.notifications.sending import Sender
from tests.campaign.conftest import NOV, OCT, customers, outbox_of, prepare, qualify
from tests.support.callbacks import ReceiverThread, post_signed, status_params
from tests.support.carrier import client_for

runner = CliRunner()


def _usd() -> float:
    return REGISTRY.get_sample_value("pn_sms_cost_total", {"price_unit": "USD"}) or 0.0


@pytest.fixture
def hebrew(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_TEMPLATE_LANGUAGE", "he")  # the default: 2 UCS-2 segments
    get_settings.cache_clear()


def test_parse() -> None:
    assert Cost.parse("2", "-0.01500", "USD") == Cost(2, Decimal("-0.01500"), "USD")
    assert Cost.parse("0", None, "USD") is None  # Messaging Service: no count yet
    assert Cost.parse(None, "", None) is None
    assert Cost.parse("x", "-0.0075", "usd") == Cost(None, Decimal("-0.0075"), "USD")
    assert Cost.parse(3, "NaN", "<b>") == Cost(3, None, None)
    assert Cost.parse("99999", "1e30", "USD") is None


def test_status_callbacks_record_segments_and_price_once(
    session: Session, receiver: ReceiverThread, sms_env: SimulatorThread
) -> None:
    customers(session, "+972501230001")
    [batch] = prepare(OCT).batches
    Sender(client_for(sms_env)).send_batch(session_scope, batch)
    [row] = outbox_of(session, OCT).values()
    path, sid = f"/v1/callbacks/status/{row.id}", row.carrier_reference_id or ""
    before = _usd()
    post_signed(receiver.base_url, path, status_params(sid, "sent", NumSegments="2"))
    row = outbox_of(session, OCT)[row.customer_id]
    assert (row.carrier_segments, row.price, row.price_unit) == (2, None, None)
    priced = status_params(sid, "delivered", NumSegments="2", Price="-0.01500", PriceUnit="USD")
    for _ in range(2):  # a duplicate callback changes nothing
        assert post_signed(receiver.base_url, path, priced).status_code == 204
    row = outbox_of(session, OCT)[row.customer_id]
    assert (row.carrier_segments, row.price, row.price_unit) == (2, Decimal("-0.015"), "USD")
    assert _usd() == pytest.approx(before + 0.015)


def test_polling_records_the_price_and_the_month_report_shows_segments_and_cost(
    session: Session, sms_env: SimulatorThread, hebrew: None
) -> None:
    customers(session, "+972501230011", "+972501230012", "+15005550004")  # the last: 21610
    result = prepare(OCT)
    assert result.warnings and "2 UCS-2 segments" in result.warnings[0]
    [batch] = result.batches
    Sender(client_for(sms_env)).send_batch(session_scope, batch)
    later = utcnow() + timedelta(minutes=5)
    DeliveryPoller(client_for(sms_env), clock=lambda: later).poll_day(session_scope, later.date())
    priced = [n for n in outbox_of(session, OCT).values() if n.carrier_reference_id]
    assert [(n.carrier_segments, n.price, n.price_unit) for n in priced] == [
        (2, Decimal("-0.015"), "USD")
    ] * 2

    report = runner.invoke(cli, ["report", "month", "--month", "2026-10", "--format", "json"])
    assert report.exit_code == 0, report.output
    [figures] = json.loads(report.output)
    assert {k: figures[k] for k in ("sms_sent", "segments", "segments_estimated",
                                    "messages_priced", "cost", "cost_unit",
                                    "opted_out_by_carrier")} == {  # fmt: skip
        "sms_sent": 2, "segments": 4, "segments_estimated": 0, "messages_priced": 2,
        "cost": "0.03000", "cost_unit": "USD", "opted_out_by_carrier": 1,
    }  # fmt: skip
    table = runner.invoke(cli, ["report", "month", "--month", "2026-10"])
    assert "cost" in table.output and "0.03000" in table.output


def test_preview_warns_of_a_text_longer_than_one_segment() -> None:
    result = runner.invoke(cli, ["sms", "preview", "--template", "he", "--month", "2026-10",
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    preview = json.loads(result.stdout)
    assert (preview["encoding"], preview["segments"]) == ("UCS-2", 2)
    assert "2 UCS-2 segments" in preview["warning"] and "charged 2 times" in preview["warning"]
    table = runner.invoke(cli, ["sms", "preview", "--template", "he", "--month", "2026-10"])
    assert "warning:" in table.output
    short = runner.invoke(cli, ["sms", "preview", "Shalom", "--json"])
    assert "warning" not in json.loads(short.stdout)


def test_preparing_a_multi_segment_month_warns_once(session: Session, hebrew: None) -> None:
    people = customers(session, "+972501230021")
    dry = runner.invoke(cli, ["run", "notifications", "--month", "2026-10", "--dry-run"])
    assert dry.exit_code == 0 and "warning:" in dry.output, dry.output
    assert prepare(OCT).multi_segment == 1
    customers(session, "+972501230022")
    prepare(OCT)
    qualify(session, people, NOV)
    prepare(NOV)
    session.expire_all()
    events = session.scalars(
        select(SystemEvent).where(SystemEvent.event_type == "sms_multi_segment_messages")
    ).all()
    assert sorted(e.event_data["month"] for e in events) == ["2026-10", "2026-11"]
    assert events[0].severity == "WARNING" and "template 'he'" in (events[0].description or "")
    assert session.scalar(select(Notification.segment_count).limit(1)) == 2
