"""The callback receiver on a loopback port (uvicorn in a thread) and signed POSTs to it."""

from __future__ import annotations

import threading
import time
from typing import Any

import requests
import uvicorn
from twilio.request_validator import RequestValidator

from app.config import Settings
from tests.support.carrier import TOKEN

PUBLIC = "https://notify.bank.example/sms-hooks"  # what the carrier calls (the proxy)


class ReceiverThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int = 0) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                access_log=False, lifespan="off")  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def start(self) -> ReceiverThread:
        self.thread.start()
        end = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < end, "the receiver did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def receiver_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "callback_public_url": PUBLIC,
        "twilio_auth_token": TOKEN,
        "callback_rate_per_second": 0,
        **overrides,
    }
    return Settings(**values)


def post_signed(
    base_url: str,
    path: str,
    params: dict[str, str],
    *,
    public: str = PUBLIC,
    token: str = TOKEN,
    signature: str | None = None,
) -> requests.Response:
    """POST ``params`` to the receiver, signed for ``public + path`` as Twilio would."""
    sig = signature
    if sig is None:
        sig = RequestValidator(token).compute_signature(public + path, params)
    return requests.post(
        base_url + path, data=params, headers={"X-Twilio-Signature": sig}, timeout=5
    )


def status_params(sid: str, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "1" * 32, "ApiVersion": "2010-04-01", "MessageSid": sid,
        "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "To": "+972501234567",
        "From": "+15005550006", **extra,
    }  # fmt: skip
