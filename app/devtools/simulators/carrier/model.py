"""The simulated carrier's vocabulary: configuration, messages and their lifecycles.

A message's whole life is decided when it is created, as a *timeline* of (seconds after
creation, status, error code) steps, so a test that waits knows exactly what it will
read, and the status callbacks can be scheduled at once:

* through a Messaging Service: ``accepted`` (``from`` null, ``num_segments`` "0") for
  ``accepted_for`` seconds, then ``queued``; with ``From``: ``queued`` at once;
* ``sending`` at ``sending_after`` (default: half-way to ``sent``), ``sent`` at ``sent_after``;
* the final status at ``delivered_after``: ``delivered``, ``undelivered`` (designated
  numbers or ``rate_undelivered``), a late ``failed`` after ``sent`` (``+15005550013`` or
  ``rate_late_failed``), or none at all: stuck in ``sent`` (``+15005550014`` or
  ``rate_stuck_in_sent``);
* a message still in the queue when its ValidityPeriod (Twilio's default: 36,000 s) ends
  is never sent: ``failed`` with 30036 (Twilio: "Validity Period Expired").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

API = "/2010-04-01/Accounts/{account}"
DEFAULT_VALIDITY = 36000  # seconds (Twilio's default and maximum)

# Twilio's magic test numbers, and what they do here. "To" refused at create:
CREATE_FAILURES: dict[str, int] = {
    "+15005550001": 21211,  # invalid number
    "+15005550004": 21610,  # unsubscribed (STOP)
    "+15005550009": 21614,  # not a mobile number
    "+15005550002": 21612,  # cannot route
    "+15005550003": 21408,  # no permission for the region
}
# "From" refused at create (Twilio's test credentials: +15005550006 is the valid one).
SENDER_FAILURES: dict[str, int] = {
    "+15005550001": 21212,  # invalid 'From' number
    "+15005550007": 21606,  # 'From' is not a message-capable number of this account
    "+15005550008": 21611,  # the sender's queue is full
}
DELIVERY_FAILURES: dict[str, int] = {
    "+15005550010": 30003,  # unreachable handset
    "+15005550011": 30005,  # unknown handset
    "+15005550012": 30006,  # landline / unreachable carrier
}
LATE_FAILURES: dict[str, int] = {"+15005550013": 30008}  # 'sent', later 'failed'
STUCK_IN_SENT = frozenset({"+15005550014"})  # 'sent' for ever (no final status)
ERROR_TEXT = {
    20001: "Invalid parameter",
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service Unavailable",
    21211: "The 'To' number is not a valid phone number.",
    21212: "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID.",
    21408: "Permission to send an SMS has not been enabled for the region.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable number.",
    21609: "Invalid StatusCallback url",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number is not currently reachable.",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21624: "Invalid validity period value",
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30008: "Unknown error",
    30036: "Validity Period Expired",
}
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})
NOT_SENT = frozenset({"accepted", "scheduled", "queued", "sending"})

Step = tuple[float, str, int | None]  # (seconds after creation, status, error code)


@dataclass
class SimConfig:
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "simulator-token"
    # --- lifecycle (seconds after creation) ---
    accepted_for: float = 0.0  # Messaging Service messages: 'accepted' this long
    sending_after: float | None = None  # None: half-way between 'queued' and 'sent'
    sent_after: float = 0.5
    delivered_after: float = 2.0  # the final status
    service_sender: str = "+15005550006"  # the pool number a Messaging Service picks
    rate_undelivered: float = 0.0  # share of messages ending 'undelivered' (30003)
    rate_late_failed: float = 0.0  # share 'sent', then 'failed' (30008)
    rate_stuck_in_sent: float = 0.0  # share never final
    # --- list visibility: a message is listed this long after creation (fetch: at once)
    list_lag: float = 0.0
    list_lag_jitter: float = 0.0  # plus up to this much, at random per message
    # --- create faults ---
    latency: float = 0.0  # added to every create (seconds)
    rate_429: float = 0.0  # probability a create answers 429 / 20429 (nothing stored)
    rate_500: float = 0.0  # probability a create answers 500 (nothing stored)
    store_then_500_rate: float = 0.0  # probability a create is stored, then answered 500
    accept_timeout_rate: float = 0.0  # probability a create is stored, then answered late
    accept_timeout_delay: float = 30.0
    outage: bool = False  # every API call answers 503
    # Delivery tracking: after this many more list pages, the outage starts (mid-list).
    outage_after_list_pages: int | None = None
    # --- status callbacks ---
    callback_loss: float = 0.0  # probability a callback is never sent
    callback_duplicate: float = 0.0  # probability it is sent twice
    callback_delay: float = 0.0  # up to this many seconds late (uniform)
    callback_reorder: float = 0.0  # probability it is held back behind the next one
    callback_reorder_delay: float = 1.0  # how long such a callback is held back
    callback_timeout: float = 5.0  # seconds Twilio waits for the receiver
    seed: int | None = None

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise KeyError(key)
            setattr(self, key, value)


@dataclass
class SimMessage:
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    num_segments: int
    created: float  # epoch seconds
    sent_after: float
    delivered_after: float
    status_callback: str | None = None
    validity_period: int | None = None
    # A status set by a test (/_sim/force): failed, canceled, read, an unknown word, or a
    # late report contradicting an earlier final one. Wins over the timeline.
    forced: tuple[str, int | None] | None = None
    forced_at: float | None = None
    accepted_for: float = 0.0
    sending_after: float | None = None
    final: tuple[str, int | None] | None = None  # None: by the designated numbers
    stuck: bool = False
    listed_after: float = 0.0  # seconds after creation before the list shows it
    service_sender: str = "+15005550006"
    _steps: list[Step] | None = field(default=None, repr=False, compare=False)

    @property
    def via_service(self) -> bool:
        return self.messaging_service_sid is not None

    def timeline(self) -> list[Step]:
        """Every status of the message's life, in order (computed once)."""
        if self._steps is None:
            self._steps = self._build()
        return self._steps

    def _build(self) -> list[Step]:
        steps: list[Step] = []
        queued_at = 0.0
        if self.via_service:
            steps.append((0.0, "accepted", None))
            queued_at = max(0.0, self.accepted_for)
        steps.append((queued_at, "queued", None))
        sent_at = max(self.sent_after, queued_at)
        sending_at = (queued_at + sent_at) / 2 if self.sending_after is None else self.sending_after
        sending_at = min(max(sending_at, queued_at), sent_at)
        validity = self.validity_period or DEFAULT_VALIDITY
        if sending_at > validity:  # still in Twilio's queue when its validity ends
            steps.append((float(validity), "failed", 30036))
            return steps
        steps.append((sending_at, "sending", None))
        steps.append((sent_at, "sent", None))
        if self.stuck or self.to in STUCK_IN_SENT:
            return steps
        final = self.final
        if final is None:
            if self.to in DELIVERY_FAILURES:
                final = ("undelivered", DELIVERY_FAILURES[self.to])
            elif self.to in LATE_FAILURES:
                final = ("failed", LATE_FAILURES[self.to])
            else:
                final = ("delivered", None)
        steps.append((max(self.delivered_after, sent_at), final[0], final[1]))
        return steps

    def step_at(self, now: float | None) -> Step:
        """The timeline step in force at ``now``; None: the initial one (create's answer)."""
        steps = self.timeline()
        current = steps[0]
        if now is None:
            return current
        age = now - self.created
        for step in steps:
            if step[0] > age:
                break
            current = step
        return current

    def sent_at(self) -> float | None:
        """Epoch of 'sent' if the timeline reaches it."""
        for offset, status, _ in self.timeline():
            if status == "sent":
                return self.created + offset
        return None

    def state(self, now: float | None) -> tuple[str, float | None, int | None]:
        """(status, date_sent as epoch or None, error_code) at ``now`` (None: initial)."""
        if self.forced is not None and now is not None:
            status, code = self.forced
            sent = None if status in NOT_SENT else self.created + self.sent_after
            return status, sent, code
        offset, status, code = self.step_at(now)
        if status in NOT_SENT or (status == "failed" and code == 30036):
            return status, None, code
        return status, self.sent_at(), code

    def updated(self, now: float | None) -> float:
        """Epoch of the last change the carrier made to the message."""
        if self.forced is not None and now is not None:
            return self.forced_at or self.created + self.sent_after
        return self.created + self.step_at(now)[0]

    def listed(self, now: float) -> bool:
        """Whether the list API shows the message yet (Twilio's lag behind creation)."""
        return now - self.created >= self.listed_after
