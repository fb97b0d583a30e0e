"""The real twilio SDK (through CarrierClient) against the carrier simulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.devtools.simulators.carrier import SimConfig, SimulatorThread
from app.notifications.carrier import (
    AmbiguousCarrierError,
    CarrierClient,
    Disposition,
    PermanentCarrierError,
    TransientCarrierError,
    classify_http,
)
from tests.support.carrier import ACCOUNT, SENDER, TOKEN, client_for


def test_create_fetch_roundtrip(carrier_sim: SimulatorThread) -> None:
    client = client_for(carrier_sim)
    sent = client.send("+972501234567", "שלום דנה 😀")
    assert sent.sid.startswith("SM") and len(sent.sid) == 34
    assert sent.num_segments == 1 and sent.to == "+972501234567"
    fetched = client.fetch(sent.sid)
    assert fetched.body == "שלום דנה 😀" and fetched.status == "delivered"
    assert fetched.date_created is not None and fetched.date_sent is not None
    # Raw JSON shape: num_segments is a string, dates are RFC 2822.
    raw = requests.get(
        f"{carrier_sim.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages/{sent.sid}.json",
        auth=(ACCOUNT, TOKEN),
        timeout=2,
    ).json()
    assert raw["num_segments"] == "1" and raw["date_created"].endswith("+0000")
    assert carrier_sim.state.per_recipient() == {"+972501234567": 1}


def test_status_progression_is_time_driven(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"sent_after": 0.3, "delivered_after": 0.6})
    client = client_for(carrier_sim)
    sid = client.send("+972501234567", "hello").sid
    assert client.fetch(sid).status == "queued"
    time.sleep(0.35)
    assert client.fetch(sid).status == "sent"
    time.sleep(0.3)
    assert client.fetch(sid).status == "delivered"


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550001", 21211), ("+15005550004", 21610), ("+15005550009", 21614)]
)
def test_designated_numbers_fail_at_create(
    carrier_sim: SimulatorThread, to: str, code: int
) -> None:
    with pytest.raises(PermanentCarrierError) as info:
        client_for(carrier_sim).send(to, "hello")
    assert info.value.code == code
    assert carrier_sim.state.per_recipient() == {}


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550010", 30003), ("+15005550011", 30005), ("+15005550012", 30006)]
)
def test_designated_numbers_fail_at_delivery(
    carrier_sim: SimulatorThread, to: str, code: int
) -> None:
    client = client_for(carrier_sim)
    message = client.fetch(client.send(to, "hello").sid)
    assert (message.status, message.error_code) == ("undelivered", code)
    assert message.is_final


def test_list_filters_and_paging(carrier_sim: SimulatorThread) -> None:
    client = client_for(carrier_sim)
    for i in range(7):
        client.send("+972501111111", f"m{i}")
    client.send("+972502222222", "other")
    mine = list(client.list_messages(to="+972501111111", page_size=3))
    assert sorted(m.body for m in mine) == sorted(f"m{i}" for i in range(7))
    today = datetime.now(UTC).replace(tzinfo=None)
    assert len(list(client.list_messages(date_sent_after=today - timedelta(hours=1)))) == 8
    assert list(client.list_messages(date_sent_before=today - timedelta(days=2))) == []
    # A page's next_page_uri carries the filters.
    page = requests.get(
        f"{carrier_sim.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
        params={"To": "+972501111111", "PageSize": 5},
        auth=(ACCOUNT, TOKEN),
        timeout=2,
    ).json()
    assert len(page["messages"]) == 5 and "To=%2B972501111111" in page["next_page_uri"]


def test_queued_message_has_no_date_sent_and_is_found_by_find_sent(
    carrier_sim: SimulatorThread,
) -> None:
    carrier_sim.state.config.update({"sent_after": 30.0, "delivered_after": 60.0})
    client = client_for(carrier_sim)
    since = datetime.now(UTC).replace(tzinfo=None)
    sent = client.send("+972503333333", "body-1")
    now = datetime.now(UTC).replace(tzinfo=None)
    assert list(client.list_messages(date_sent_after=now - timedelta(hours=1))) == []
    found = client.find_sent("+972503333333", "body-1", since)
    assert found is not None and found.sid == sent.sid
    assert client.find_sent("+972503333333", "another body", since) is None


def test_bad_credentials_are_permanent(carrier_sim: SimulatorThread) -> None:
    client = CarrierClient(ACCOUNT, "wrong", sender=SENDER, base_url=carrier_sim.base_url)
    with pytest.raises(PermanentCarrierError) as info:
        client.send("+972501234567", "x")
    assert info.value.code == 20003


def test_429_is_transient_and_500_ambiguous(carrier_sim: SimulatorThread) -> None:
    client = client_for(carrier_sim)
    carrier_sim.state.config.update({"rate_429": 1.0})
    with pytest.raises(TransientCarrierError) as info:
        client.send("+972501234567", "x")
    assert info.value.code == 20429
    carrier_sim.state.config.update({"rate_429": 0.0, "rate_500": 1.0})
    with pytest.raises(AmbiguousCarrierError):
        client.send("+972501234567", "x")
    carrier_sim.state.config.update({"rate_500": 0.0, "outage": True})
    with pytest.raises(AmbiguousCarrierError):
        client.send("+972501234567", "x")
    assert carrier_sim.state.per_recipient() == {}


def test_accept_then_timeout_is_ambiguous_but_stored(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"accept_timeout_rate": 1.0, "accept_timeout_delay": 1.0})
    client = client_for(carrier_sim, timeout=0.3)
    with pytest.raises(AmbiguousCarrierError):
        client.send("+972501234567", "late")
    assert carrier_sim.state.per_recipient() == {"+972501234567": 1}


def test_connection_refused_is_transient() -> None:
    client = CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url="http://127.0.0.1:9", timeout=1)
    with pytest.raises(TransientCarrierError):
        client.send("+972501234567", "x")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (400, 21211, Disposition.PERMANENT),
        (400, 21408, Disposition.PERMANENT),
        (400, 21612, Disposition.PERMANENT),
        (400, 21617, Disposition.PERMANENT),
        (400, 21611, Disposition.TRANSIENT),
        (429, 20429, Disposition.TRANSIENT),
        (429, None, Disposition.TRANSIENT),
        (404, 20404, Disposition.PERMANENT),
        (500, None, Disposition.AMBIGUOUS),
        (503, None, Disposition.AMBIGUOUS),
    ],
)
def test_error_table(status: int, code: int | None, expected: Disposition) -> None:
    assert classify_http(status, code) is expected


def test_simulator_config_endpoint_rejects_unknown_settings() -> None:
    sim = SimulatorThread(SimConfig(seed=1)).start()
    try:
        bad = requests.post(f"{sim.base_url}/_sim/config", json={"nope": 1}, timeout=2)
        good = requests.post(f"{sim.base_url}/_sim/config", json={"latency": 0.01}, timeout=2)
        assert bad.status_code == 400 and good.json()["latency"] == 0.01
    finally:
        sim.stop()
