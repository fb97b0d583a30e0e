"""The simulator as strict as Twilio (issue 19): lifecycle, faults, create and list rules.

Real HTTP on loopback: the twilio SDK (through CarrierClient) or raw requests where the
test is about the wire format.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from app.devtools.simulators.carrier import SimulatorThread
from app.notifications.carrier import AmbiguousCarrierError, CarrierClient, PermanentCarrierError
from tests.support.carrier import ACCOUNT, SENDER, TOKEN, client_for

SERVICE = "MG" + "a" * 32
TO = "+972501234567"


def _url(sim: SimulatorThread, tail: str = "") -> str:
    return f"{sim.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages{tail}.json"


def _create(sim: SimulatorThread, **form: Any) -> requests.Response:
    data = {"To": TO, "From": SENDER, "Body": "hello", **form}
    return requests.post(
        _url(sim), data={k: v for k, v in data.items() if v is not None}, auth=(ACCOUNT, TOKEN),
        timeout=5,
    )  # fmt: skip


def _list(sim: SimulatorThread, **params: Any) -> dict[str, Any]:
    r = requests.get(_url(sim), params=params, auth=(ACCOUNT, TOKEN), timeout=5)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _statuses_seen(client: CarrierClient, sid: str, seconds: float) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = client.fetch(sid).status
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.02)
    return seen


def test_full_lifecycle_with_sending(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"sent_after": 0.4, "delivered_after": 0.8})
    client = client_for(carrier_sim)
    sent = client.send(TO, "hello")
    assert sent.status == "queued"  # create answers the initial status, always
    assert _statuses_seen(client, sent.sid, 1.1) == ["queued", "sending", "sent", "delivered"]


def test_messaging_service_starts_accepted_without_sender_or_segments(
    carrier_sim: SimulatorThread,
) -> None:
    carrier_sim.state.config.update({"accepted_for": 0.3, "sent_after": 0.5})
    raw = _create(carrier_sim, From=None, MessagingServiceSid=SERVICE)
    assert raw.status_code == 201
    body = raw.json()
    assert (body["status"], body["num_segments"], body["from"]) == ("accepted", "0", None)
    assert body["messaging_service_sid"] == SERVICE
    time.sleep(0.35)
    later = requests.get(_url(carrier_sim, f"/{body['sid']}"), auth=(ACCOUNT, TOKEN), timeout=5)
    assert later.json()["status"] in ("queued", "sending")
    assert later.json()["num_segments"] == "1" and later.json()["from"] == "+15005550006"


def test_validity_period_expiry_fails_with_30036(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"sending_after": 3.0, "sent_after": 3.5})
    client = client_for(carrier_sim)
    sid = client.send(TO, "late", validity_period=1).sid
    assert client.fetch(sid).status == "queued"
    time.sleep(1.1)
    expired = client.fetch(sid)
    assert (expired.status, expired.error_code, expired.date_sent) == ("failed", 30036, None)


@pytest.mark.parametrize(
    ("to", "final", "code"), [("+15005550013", "failed", 30008), ("+15005550014", "sent", None)]
)
def test_late_failure_and_stuck_in_sent(
    carrier_sim: SimulatorThread, to: str, final: str, code: int | None
) -> None:
    carrier_sim.state.config.update({"sent_after": 0.1, "delivered_after": 0.4})
    client = client_for(carrier_sim)
    sid = client.send(to, "x").sid
    time.sleep(0.2)
    assert client.fetch(sid).status == "sent"
    time.sleep(0.4)
    message = client.fetch(sid)
    assert (message.status, message.error_code) == (final, code)
    assert message.date_sent is not None


def test_list_visibility_lag_hides_new_messages_from_lists_not_fetches(
    carrier_sim: SimulatorThread,
) -> None:
    carrier_sim.state.config.update({"list_lag": 0.6})
    client = client_for(carrier_sim)
    since = datetime.now(UTC).replace(tzinfo=None)
    sent = client.send(TO, "lagging")
    assert client.fetch(sent.sid).sid == sent.sid
    assert list(client.list_messages(to=TO)) == []
    assert client.find_sent(TO, "lagging", since) is None  # "not listed" is not "not sent"
    time.sleep(0.65)
    found = client.find_sent(TO, "lagging", since)
    assert found is not None and found.sid == sent.sid


def test_store_then_500_is_ambiguous_and_stored(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"store_then_500_rate": 1.0})
    raw = _create(carrier_sim)
    assert raw.status_code == 500
    assert raw.json() == {
        "code": 20500, "message": raw.json()["message"],
        "more_info": "https://www.twilio.com/docs/errors/20500", "status": 500,
    }  # fmt: skip
    with pytest.raises(AmbiguousCarrierError):
        client_for(carrier_sim).send(TO, "again")
    assert carrier_sim.state.per_recipient() == {TO: 2}


def test_every_error_has_an_integer_code(carrier_sim: SimulatorThread) -> None:
    carrier_sim.state.config.update({"rate_500": 1.0})
    assert _create(carrier_sim).json()["code"] == 20500
    carrier_sim.state.config.update({"rate_500": 0.0, "outage": True})
    outage = _create(carrier_sim)
    assert (outage.status_code, outage.json()["code"]) == (503, 20503)
    carrier_sim.state.config.update({"outage": False})
    missing = requests.get(_url(carrier_sim, "/SM" + "0" * 32), auth=(ACCOUNT, TOKEN), timeout=5)
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)
    nowhere = requests.get(f"{carrier_sim.base_url}/nowhere", timeout=5)
    assert (nowhere.status_code, nowhere.json()["code"]) == (404, 20404)
    wrong = requests.get(_url(carrier_sim), auth=(ACCOUNT, "nope"), timeout=5)
    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"From": None}, 21603),
        ({"From": "+15005550001"}, 21212),
        ({"From": "+15005550007"}, 21606),
        ({"From": "+15005550008"}, 21611),
        ({"To": None}, 21604),
        ({"To": "0501234567"}, 21211),
        ({"Body": None}, 21602),
        ({"Body": "x" * 1601}, 21617),
        ({"ValidityPeriod": "0"}, 21624),
        ({"ValidityPeriod": "36001"}, 21624),
        ({"ValidityPeriod": "ten"}, 21624),
        ({"ValidityPeriod": "1.5"}, 21624),
        ({"StatusCallback": "not a url"}, 21609),
        ({"From": None, "MessagingServiceSid": "MG123"}, 20001),
    ],
)
def test_bad_create_input_is_a_400_with_twilios_code(
    carrier_sim: SimulatorThread, form: dict[str, Any], code: int
) -> None:
    raw = _create(carrier_sim, **form)
    assert raw.status_code == 400 and raw.json()["code"] == code
    assert carrier_sim.state.per_recipient() == {}


def test_sender_queue_full_is_transient_and_no_sender_permanent(
    carrier_sim: SimulatorThread,
) -> None:
    full = CarrierClient(ACCOUNT, TOKEN, sender="+15005550008", base_url=carrier_sim.base_url)
    with pytest.raises(Exception) as info:
        full.send(TO, "x")
    assert type(info.value).__name__ == "TransientCarrierError"
    bad = CarrierClient(ACCOUNT, TOKEN, sender="+15005550007", base_url=carrier_sim.base_url)
    with pytest.raises(PermanentCarrierError) as refused:
        bad.send(TO, "x")
    assert refused.value.code == 21606


@pytest.mark.parametrize(
    "params",
    [{"PageSize": "ten"}, {"Page": "-1"}, {"PageToken": "PA12"}, {"DateSent>": "yesterday"}],
)
def test_bad_list_input_is_a_400(carrier_sim: SimulatorThread, params: dict[str, str]) -> None:
    r = requests.get(_url(carrier_sim), params=params, auth=(ACCOUNT, TOKEN), timeout=5)
    assert r.status_code == 400 and r.json()["code"] == 20001


def test_from_filter(carrier_sim: SimulatorThread) -> None:
    _create(carrier_sim, From="+15005550006")
    _create(carrier_sim, From="+15005550099")
    _create(carrier_sim, From=None, MessagingServiceSid=SERVICE)  # pool sender +15005550006
    assert len(_list(carrier_sim)["messages"]) == 3
    assert len(_list(carrier_sim, From="+15005550099")["messages"]) == 1
    assert len(_list(carrier_sim, From="+15005550006")["messages"]) == 2
    assert _list(carrier_sim, From="+15005550099", To="+972500000000")["messages"] == []


def test_page_tokens_are_twilio_shaped_and_walk_both_ways(carrier_sim: SimulatorThread) -> None:
    sids = [_create(carrier_sim, Body=f"m{i}").json()["sid"] for i in range(7)]
    newest_first = list(reversed(sids))
    first = _list(carrier_sim, PageSize=3)
    assert [m["sid"] for m in first["messages"]] == newest_first[:3]
    assert first["previous_page_uri"] is None
    assert f"PageToken=PA{newest_first[2]}" in first["next_page_uri"]
    second = requests.get(
        carrier_sim.base_url + first["next_page_uri"], auth=(ACCOUNT, TOKEN), timeout=5
    ).json()
    assert [m["sid"] for m in second["messages"]] == newest_first[3:6]
    assert second["page"] == 1 and f"PageToken=PB{newest_first[3]}" in second["previous_page_uri"]
    back = requests.get(
        carrier_sim.base_url + second["previous_page_uri"], auth=(ACCOUNT, TOKEN), timeout=5
    ).json()
    assert [m["sid"] for m in back["messages"]] == newest_first[:3]
    last = _list(carrier_sim, PageSize=3, Page=2, PageToken=f"PA{newest_first[5]}")
    assert [m["sid"] for m in last["messages"]] == newest_first[6:]
    assert last["next_page_uri"] is None


def test_date_sent_accepts_twilios_formats(carrier_sim: SimulatorThread) -> None:
    _create(carrier_sim)
    now = datetime.now(UTC)
    before, after = now - timedelta(hours=1), now + timedelta(hours=1)
    for bound, expected in (
        (format_datetime(before), 1),  # RFC 2822, "+0000"
        (before.strftime("%a, %d %b %Y %H:%M:%S -0000"), 1),
        (before.strftime("%Y-%m-%d %H:%M:%S.000"), 1),
        (before.strftime("%Y-%m-%dT%H:%M:%SZ"), 1),
        ((before - timedelta(hours=7)).strftime("%m/%d/%Y %H:%M:%S MST"), 1),
        (format_datetime(after), 0),
        (now.strftime("%Y-%m-%d"), 1),
    ):
        assert len(_list(carrier_sim, **{"DateSent>": bound})["messages"]) == expected, bound
    assert len(_list(carrier_sim, DateSent=now.strftime("%Y-%m-%d"))["messages"]) == 1
