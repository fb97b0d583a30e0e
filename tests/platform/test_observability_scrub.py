"""Masking in logs and Sentry: phone numbers, names, e-mails, balances, bodies, secrets."""

from __future__ import annotations

import io
import json
import logging
from decimal import Decimal
from typing import Any

import dramatiq
import pytest
import sentry_sdk
from dramatiq.brokers.stub import StubBroker
from sentry_sdk.transport import Transport

from app.observability.logging import JsonFormatter, configure_logging, log_context
from app.observability.scrub import mask_phone, mask_text, register_secrets, scrub_actor_argument
from app.observability.sentry import init_sentry

PHONE = "+972501234567"
# Runtime personal data of the Sentry test, kept away from the actor's source lines
# (Sentry shows a few lines of source around each frame; production source holds no
# customer data, so neither should the lines the test's frames show).
CUSTOMER = {"name": "Dana Levi", "email": "dana.levi@example.com"}
BODY = "שלום Dana, your balance is 15000.00"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+972501234567", "+97250***4567"),
        ("+972-50-123-4567", "+97250***4567"),
        ("0501234567", "050***4567"),
        ("050-1234567", "050***4567"),
        ("+14155550123", "+1415***0123"),
    ],
)
def test_phone_numbers_are_masked_keeping_prefix_and_last_four(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked
    assert mask_text(f"sent to {raw}.") == f"sent to {masked}."


def test_ids_dates_and_timestamps_are_not_mistaken_for_phone_numbers() -> None:
    text = (
        "run 5f1c2d3e-0000-4000-8000-123456789012 for 2025-01-31 at 1738300000 "
        "shard 3/16 customer_id=1234567"
    )
    assert mask_text(text) == text


def test_emails_money_reprs_and_credentials_are_masked() -> None:
    text = (
        "dana.levi@example.co.il balance=Decimal('15000.00') "
        "postgresql://app:s3cr3t-pw@db:5432/x Authorization: Bearer abcdef0123456789 "
        "password=hunter22"
    )
    masked = mask_text(text)
    for leaked in ("dana.levi", "15000.00", "s3cr3t-pw", "abcdef0123456789", "hunter22"):
        assert leaked not in masked
    assert "***@example.co.il" in masked


def test_registered_secret_values_are_redacted_verbatim() -> None:
    register_secrets(["tok_live_9f8e7d6c5b4a"])
    assert "tok_live" not in mask_text("auth with tok_live_9f8e7d6c5b4a failed")


def test_actor_arguments_keep_ids_and_dates_only() -> None:
    assert scrub_actor_argument(42) == 42
    assert scrub_actor_argument("2025-01") == "2025-01"
    assert scrub_actor_argument([1, 2, 3]) == [1, 2, 3]
    assert scrub_actor_argument(PHONE) == "[Filtered]"
    assert scrub_actor_argument("15000.00") == "[Filtered]"
    assert scrub_actor_argument(972501234567) == "[Filtered]"
    assert scrub_actor_argument({"phone": "x", "month": "2025-01"}) == {
        "phone": "[Filtered]",
        "month": "2025-01",
    }


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_log_lines_carry_context_and_mask_personal_data() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("tests.observability.json")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        with log_context(correlation_id="c0ffee00-0000-4000-8000-000000000001", actor="send"):
            log.info("submitted to %s", PHONE, extra={"first_name": "Dana", "count": 3})
        try:
            raise ValueError(f"carrier refused {PHONE} for dana@example.com")
        except ValueError:
            log.exception("send failed")
    finally:
        log.removeHandler(handler)
    first, second = _json_lines(stream)
    assert first["message"] == "submitted to +97250***4567"
    assert first["correlation_id"] == "c0ffee00-0000-4000-8000-000000000001"
    assert first["actor"] == "send"
    assert first["extra"] == {"first_name": "[Filtered]", "count": 3}
    assert "actor" not in second  # the context ended with the block
    assert PHONE not in second["exception"] and "dana@" not in second["exception"]
    assert "+97250***4567" in second["exception"]


def test_configured_logging_never_prints_the_settings_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.config import get_settings

    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "authtoken-0123456789abcdef")
    get_settings.cache_clear()
    root = logging.getLogger()
    saved = (root.handlers[:], [h.formatter for h in root.handlers], root.level)
    stream = io.StringIO()
    try:
        configure_logging("INFO", json_format=True, stream=stream)
        logging.getLogger("tests.secret").warning(
            "carrier said: bad credentials authtoken-0123456789abcdef"
        )
    finally:
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                root.removeHandler(handler)
        for handler, formatter in zip(saved[0], saved[1], strict=True):
            handler.setFormatter(formatter)
        root.setLevel(saved[2])
        get_settings.cache_clear()
    lines = [line for line in _json_lines(stream) if line["logger"] == "tests.secret"]
    assert lines and "authtoken-0123456789abcdef" not in json.dumps(lines)


class CapturingTransport(Transport):
    """The real SDK pipeline (integrations, before_send), ending in a list, not HTTP."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        for item in envelope.items:
            if item.type == "event":
                self.events.append(item.payload.json)


@pytest.fixture
def sentry_capture() -> Any:
    transport = CapturingTransport()
    assert init_sentry(transport=transport, dsn="https://public@sentry.invalid/1")
    yield transport
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # back to a disabled client


def test_sentry_is_off_without_a_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.config import get_settings

    monkeypatch.delenv("SENTRY_DSN", raising=False)
    get_settings.cache_clear()
    assert init_sentry() is False


def test_sentry_event_from_a_failing_actor_carries_no_personal_data(
    sentry_capture: CapturingTransport,
) -> None:
    # A fresh broker *after* init: the Dramatiq integration hooks Broker.__init__.
    broker = StubBroker()
    broker.emit_after("process_boot")

    @dramatiq.actor(broker=broker, max_retries=0, actor_name="pii_probe")
    def pii_probe(notification_id: int, phone: str, balance: str, body: str) -> None:
        customer_name = CUSTOMER["name"]  # locals Sentry shows in the frame
        email = CUSTOMER["email"]
        amount = Decimal(balance)
        logging.getLogger("tests.pii").info("about to text %s (%s)", phone, email)
        raise RuntimeError(f"carrier refused {phone} for {customer_name} amount {amount!r}")

    worker = dramatiq.Worker(broker, worker_timeout=100)
    worker.start()
    try:
        pii_probe.send(7, PHONE, "15000.00", BODY)
        broker.join(pii_probe.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()
    sentry_sdk.flush()
    events = [e for e in sentry_capture.events if e.get("exception")]
    assert events, "the failing actor produced no Sentry event"
    event = events[0]
    dumped = json.dumps(event, ensure_ascii=False)
    for leaked in ("501234567", "Dana", "Levi", "dana.levi", "15000", "שלום"):
        assert leaked not in dumped, _find(event, leaked)
    data = event["contexts"]["dramatiq"]["data"]
    assert data["args"] == [7, "[Filtered]", "[Filtered]", "[Filtered]"]
    assert "+97250***4567" in event["exception"]["values"][0]["value"]
    assert event["environment"] and event["release"].startswith("premium-notify@")
    assert "user" not in event or set(event["user"]) <= {"id"}


def _find(obj: Any, needle: str, path: str = "") -> list[str]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _find(v, needle, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _find(v, needle, f"{path}[{i}]")
    elif needle in str(obj):
        out.append(f"{path}={str(obj)[:200]}")
    return out


def test_command_line_arguments_are_filtered() -> None:
    from app.observability.sentry import scrub_event

    event = {"extra": {"sys.argv": ["premium-notify", "gdpr", "export", "--account", "ACC1"]}}
    scrubbed = scrub_event(event)
    assert scrubbed["extra"]["sys.argv"][0] == "premium-notify"
    assert "ACC1" not in str(scrubbed)
    assert len(scrubbed["extra"]["sys.argv"]) == 5
