"""What the simulated carrier stored, indexed for the list API; Twilio's JSON shape."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from app.devtools.simulators.carrier.listing import ListQuery, Page, select_page
from app.devtools.simulators.carrier.model import API, ERROR_TEXT, SimConfig, SimMessage


@lru_cache(maxsize=4096)
def _rfc2822_second(second: int) -> str:
    return format_datetime(datetime.fromtimestamp(second, UTC))


def rfc2822(epoch: float | None) -> str | None:
    return None if epoch is None else _rfc2822_second(int(epoch))


PRICE_PER_SEGMENT = 0.0075  # USD; Twilio's price is negative (a charge) and comes late


@dataclass
class CarrierState:
    """Everything the simulator stored; safe to read from another thread."""

    config: SimConfig = field(default_factory=SimConfig)
    messages: dict[str, SimMessage] = field(default_factory=dict)
    order: list[SimMessage] = field(default_factory=list)  # creation order
    accepted: list[tuple[float, str, int]] = field(default_factory=list)  # (time, sid, segs)
    requests: dict[str, int] = field(default_factory=dict)  # outcome -> count

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.rng = random.Random(self.config.seed)
        self.position: dict[str, int] = {}  # sid -> index in ``order``
        self.by_to: dict[str, list[int]] = {}  # recipient -> indexes in ``order``
        self.by_from: dict[str, list[int]] = {}
        self.deleted: set[str] = set()  # sids deleted through the API
        # Called with (message, status, code) when a test forces a status (callbacks).
        self.on_force: Callable[[SimMessage, str, int | None], None] | None = None

    def reset(self) -> None:
        with self.lock:
            for container in (self.messages, self.order, self.accepted, self.requests,
                              self.position, self.by_to, self.by_from,
                              self.deleted):  # fmt: skip
                container.clear()
            self.rng = random.Random(self.config.seed)

    def count(self, outcome: str) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1

    def store(self, message: SimMessage) -> None:
        with self.lock:
            index = len(self.order)
            self.messages[message.sid] = message
            self.order.append(message)
            self.position[message.sid] = index
            self.by_to.setdefault(message.to, []).append(index)
            sender = message.from_ or message.service_sender
            self.by_from.setdefault(sender, []).append(index)
            self.accepted.append((message.created, message.sid, message.num_segments))

    def delete(self, sid: str) -> bool:
        """Forget message ``sid`` (fetch answers 404, lists skip it); False if unknown."""
        with self.lock:
            if self.messages.pop(sid, None) is None:
                return False
            self.deleted.add(sid)
            return True

    def force(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Make message ``sid`` report ``status`` (and ``error_code``) from now on."""
        with self.lock:
            message = self.messages[sid]
            message.forced, message.forced_at = (status, error_code), time.time()
        if self.on_force is not None:
            self.on_force(message, status, error_code)

    def per_recipient(self) -> dict[str, int]:
        with self.lock:
            return {to: len(indexes) for to, indexes in self.by_to.items()}

    def accept_times(self) -> list[tuple[float, int]]:
        with self.lock:
            return [(t, segs) for t, _, segs in self.accepted]

    def page(self, query: ListQuery, now: float) -> Page:
        """One list page (raises ``BadQuery`` for an unknown page token)."""
        with self.lock:
            indexes: Sequence[int]
            if query.to is not None:
                indexes = self.by_to.get(query.to, [])
            elif query.from_ is not None:
                indexes = self.by_from.get(query.from_, [])
            else:
                indexes = range(len(self.order))
            if self.deleted:
                indexes = [i for i in indexes if self.order[i].sid not in self.deleted]
            return select_page(query, indexes, self.order.__getitem__, self.position.get, now)

    def view(self, m: SimMessage, now: float | None) -> dict[str, Any]:
        """The message as Twilio's JSON shows it at ``now`` (None: as created)."""
        status, sent, code = m.state(now)
        account = self.config.account_sid
        accepted = status == "accepted"
        sender = m.from_ if accepted else (m.from_ or m.service_sender)
        final_and_sent = status in ("delivered", "undelivered", "read")
        return {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": m.body,
            "date_created": rfc2822(m.created),
            "date_sent": rfc2822(sent),
            "date_updated": rfc2822(m.updated(now)),
            "direction": "outbound-api",
            "error_code": code,
            "error_message": ERROR_TEXT.get(code) if code else None,
            "from": sender,
            "messaging_service_sid": m.messaging_service_sid,
            "num_media": "0",
            # Through a Messaging Service the segments are counted once a sender is picked.
            "num_segments": "0" if accepted else str(m.num_segments),
            "price": f"-{PRICE_PER_SEGMENT * m.num_segments:.5f}" if final_and_sent else None,
            "price_unit": "USD",
            "sid": m.sid,
            "status": status,
            "subresource_uris": {
                "media": f"{API.format(account=account)}/Messages/{m.sid}/Media.json"
            },
            "to": m.to,
            "uri": f"{API.format(account=account)}/Messages/{m.sid}.json",
        }


def max_in_any_second(accepts: list[tuple[float, int]]) -> int:
    """The most segments accepted in any one-second window [t, t + 1) of (time, segments)
    pairs: how a carrier would judge a segments-per-second limit."""
    accepts = sorted(accepts)
    best, j, total = 0, 0, 0
    for i in range(len(accepts)):
        while j < len(accepts) and accepts[j][0] < accepts[i][0] + 1.0:
            total += accepts[j][1]
            j += 1
        best = max(best, total)
        total -= accepts[i][1]
    return best
