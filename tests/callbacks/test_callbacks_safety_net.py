"""Polling is the safety net (issue 19, point 4): a message that reached its final status
through callbacks is never polled; polling settles the rest — callbacks lost, or the
receiver down when they were sent."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.session import session_scope
from app.delivery.polling import DeliveryPoller, Mode
from app.models import DeliveryStatus
from app.months import Month
from app.notifications.carrier import CarrierClient, CarrierMessage
from app.notifications.outbox import prepare_month
from app.notifications.sending import Sender, utcnow
from tests.support.callbacks import Wired
from tests.support.carrier import ACCOUNT, MONTH, SENDER, TOKEN, outbox, qualified_customers


class _CountingClient(CarrierClient):
    """The carrier client, noting which messages it fetched."""

    fetched: list[str]

    def fetch(self, sid: str) -> CarrierMessage:
        self.fetched.append(sid)
        return super().fetch(sid)


def _history(session: Session, nid: uuid.UUID) -> list[tuple[str, int | None]]:
    session.expire_all()
    rows = session.scalars(
        select(DeliveryStatus)
        .where(DeliveryStatus.notification_id == nid)
        .order_by(DeliveryStatus.created_at, DeliveryStatus.id)
    )
    return [(r.carrier_status or "", r.attempts) for r in rows]


def test_callbacks_first_polling_for_what_they_missed(
    session: Session, sender_env: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, receiver, _ = sender_env
    monkeypatch.setenv("SMS_BATCH_SIZE", "1")  # one batch per message: faults per message
    get_settings.cache_clear()
    qualified_customers(session, 5)
    with session_scope() as s:
        batches = prepare_month(s, Month.of(MONTH)).batches
    sender = Sender(CarrierClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url))
    for batch in batches[:3]:
        assert sender.send_batch(session_scope, batch).submitted == 1
    rows = {r.batch_id: r.id for r in outbox(session)}
    by_callbacks = [rows[b] for b in batches[:3]]
    end = time.monotonic() + 10
    while any(_history(session, nid)[-1:] != [("delivered", 0)] for nid in by_callbacks):
        assert time.monotonic() < end, [_history(session, nid) for nid in by_callbacks]
        time.sleep(0.05)
    sim.state.config.update({"callback_loss": 1.0})  # this one's callbacks are lost
    assert sender.send_batch(session_scope, batches[3]).submitted == 1
    sim.state.config.update({"callback_loss": 0.0})
    receiver.stop()  # and this one's find the receiver down
    assert sender.send_batch(session_scope, batches[4]).submitted == 1
    missed = [r for r in outbox(session) if r.batch_id in batches[3:]]
    time.sleep(1.0)  # the missed ones are delivered at the carrier too by now
    assert all(_history(session, r.id) == [] for r in missed)
    before = {nid: _history(session, nid) for nid in by_callbacks}

    # The poller's next round, once the first check is due (DELIVERY_BACKOFF_MINUTES[0]).
    client = _CountingClient(ACCOUNT, TOKEN, sender=SENDER, base_url=sim.base_url)
    client.fetched = []
    poller = DeliveryPoller(client, clock=lambda: utcnow() + timedelta(minutes=2))
    with session_scope() as s:
        [day] = poller.due_days(s)
    assert (day.due, day.open, day.total) == (2, 2, 5)  # the callbacks' finals are not due
    stats = poller.poll_day(session_scope, day.day, Mode.FETCH)
    assert (stats.due, stats.fetch_calls, stats.list_calls) == (2, 2, 0)
    assert sorted(client.fetched) == sorted(r.carrier_reference_id for r in missed)
    for row in missed:  # settled by polling
        assert _history(session, row.id)[-1] == ("delivered", 1)
    for nid in by_callbacks:  # never polled: not a row added, not a check counted
        assert _history(session, nid) == before[nid]
    with session_scope() as s:  # everything final: no poll at all any more
        assert poller.due_days(s) == []
