"""Every JSON body the simulator returns, validated against Twilio's own OpenAPI schemas.

``tests/devtools/twilio_oai/messages-openapi.json`` (Twilio's description of the Messages
API, vendored with its MIT licence)
gives the message and list-page schemas; Twilio's documentation gives the error body
(``{code, message, more_info, status}``, ``code`` an integer). OpenAPI 3.0's
``nullable`` becomes JSON Schema's ``"type": [T, "null"]``; RFC 2822 dates are checked
with a format checker of their own.
"""

from __future__ import annotations

import copy
import json
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from jsonschema import Draft202012Validator, FormatChecker

from app.devtools.simulators.carrier import SimulatorThread
from tests.support.carrier import ACCOUNT, SENDER, TOKEN

SPEC_DIR = Path(__file__).resolve().parent / "twilio_oai"
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "more_info": {"type": "string"},
        "status": {"type": "integer"},
    },
    "required": ["code", "message", "more_info", "status"],
    "additionalProperties": False,
}
SERVICE = "MG" + "b" * 32


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 -> JSON Schema: ``nullable: true`` admits null."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items() if k not in ("examples", "example")}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def _rfc2822(value: object) -> bool:
    if isinstance(value, str):
        parsed = parsedate_to_datetime(value)
        return parsed.utcoffset() is not None and value.endswith("+0000")  # GMT, as Twilio
    return True


def _validators() -> dict[str, Draft202012Validator]:
    assert SPEC_DIR is not None
    spec = json.loads((SPEC_DIR / "messages-openapi.json").read_text())
    components = _nullable(copy.deepcopy(spec["components"]))
    paths = spec["paths"]
    base = "/2010-04-01/Accounts/{AccountSid}/Messages"
    page = paths[base + ".json"]["get"]["responses"]["200"]["content"]["application/json"]
    checker = FormatChecker()
    checker.checks("date-time-rfc-2822", raises=(TypeError, ValueError))(_rfc2822)

    def make(schema: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator({**schema, "components": components}, format_checker=checker)

    message = {"$ref": "#/components/schemas/api.v2010.account.message"}
    return {
        "message": make(message),
        "page": make(_nullable(copy.deepcopy(page["schema"]))),
        "error": Draft202012Validator(ERROR_SCHEMA),
    }


class Recorder:
    """Calls the simulator and keeps every (kind, status, body) it answered."""

    def __init__(self, sim: SimulatorThread) -> None:
        self.sim = sim
        self.bodies: list[tuple[str, int, Any]] = []

    def call(self, method: str, tail: str, **kwargs: Any) -> Any:
        url = f"{self.sim.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages{tail}"
        if tail.startswith("/2010-04-01"):
            url = self.sim.base_url + tail
        kwargs.setdefault("auth", (ACCOUNT, TOKEN))
        r = requests.request(method, url, timeout=5, **kwargs)
        assert r.headers["Content-Type"].startswith("application/json"), r.text[:200]
        body = r.json()
        kind = "error" if r.status_code >= 400 else "page" if "messages" in body else "message"
        self.bodies.append((kind, r.status_code, body))
        return body


def test_every_body_matches_twilios_schemas(carrier_sim: SimulatorThread) -> None:
    validators = _validators()
    config = carrier_sim.state.config
    # Each status lasts a second or more, so a poll every 0.2 s sees every one of them
    # even on a loaded machine (statuses follow the wall clock).
    config.update({"sent_after": 3.0, "delivered_after": 4.0, "accepted_for": 1.0})
    rec = Recorder(carrier_sim)
    sids = []
    for to in ("+972501111111", "+15005550010", "+15005550013", "+15005550014"):
        form = {"To": to, "From": SENDER, "Body": "שלום"}
        sids.append(rec.call("POST", ".json", data=form)["sid"])
    form = {"To": "+972502222222", "MessagingServiceSid": SERVICE, "Body": "hi",
            "StatusCallback": "http://127.0.0.1:9/cb"}  # fmt: skip
    rec.call("POST", ".json", data=form)
    rec.call("POST", ".json", data={"To": "+972503333333", "From": SENDER, "Body": "x",
                                    "ValidityPeriod": "1"})  # fmt: skip
    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:  # every status of every lifecycle on the way
        for sid in sids:
            rec.call("GET", f"/{sid}.json")
        time.sleep(0.2)
    carrier_sim.state.force(sids[0], "read")
    rec.call("GET", f"/{sids[0]}.json")
    first = rec.call("GET", ".json", params={"PageSize": 2})
    second = rec.call("GET", first["next_page_uri"])
    rec.call("GET", second["previous_page_uri"])
    rec.call("GET", ".json", params={"To": "+972509999999"})
    rec.call("GET", ".json", params={"From": SENDER, "DateSent>": "2020-01-01"})
    # Errors: bad input, auth, not found, rate, 500 before and after storing, outage.
    rec.call("POST", ".json", data={"To": "+972501111111", "Body": "no sender"})
    rec.call("POST", ".json", data={"To": "+972501111111", "From": SENDER, "Body": "x",
                                    "ValidityPeriod": "forever"})  # fmt: skip
    rec.call("GET", ".json", params={"PageToken": "nonsense"})
    rec.call("GET", ".json", auth=(ACCOUNT, "wrong"))
    rec.call("GET", "/SM" + "0" * 32 + ".json")
    for fault in ("rate_429", "rate_500", "store_then_500_rate"):
        config.update({fault: 1.0})
        rec.call("POST", ".json", data={"To": "+972501111111", "From": SENDER, "Body": "x"})
        config.update({fault: 0.0})
    config.update({"outage": True})
    rec.call("GET", ".json")
    config.update({"outage": False})

    kinds = {kind for kind, _, _ in rec.bodies}
    assert kinds == {"message", "page", "error"}
    statuses = set()
    errors = {}
    message_schema = validators["message"].schema["components"]["schemas"]
    properties = set(message_schema["api.v2010.account.message"]["properties"])
    for kind, http_status, body in rec.bodies:
        problems = [e.message for e in validators[kind].iter_errors(body)]
        assert not problems, (kind, http_status, problems, body)
        messages = body["messages"] if kind == "page" else [body] if kind == "message" else []
        for m in messages:
            assert set(m) == properties, set(m) ^ properties  # every field, no other
            statuses.add(m["status"])
        if kind == "error":
            errors[http_status] = body["code"]
            assert body["status"] == http_status
    assert {"accepted", "queued", "sending", "sent", "delivered", "undelivered",
            "failed", "read"} <= statuses  # fmt: skip
    assert errors == {400: 20001, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}
