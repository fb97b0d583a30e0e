"""Delivery polling against the carrier simulator (real twilio SDK, real PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db.session import session_scope
from app.delivery.polling import Mode
from app.devtools.simulators.carrier import SimulatorThread
from app.models import JobRun
from tests.delivery.helpers import Clock, events, history, poller, submitted


def test_status_progression_builds_history_and_stops_at_final(
    session: Session, sim: SimulatorThread
) -> None:
    (n,) = submitted(session, sim, 1)
    clock = Clock()
    p = poller(sim, clock)
    with session.begin():
        assert p.due_days(session) == []  # backoff: the first look is 1 minute after submission
    session.commit()

    clock.advance(minutes=1, seconds=1)
    stats = p.poll_day(session_scope, clock.sent_day)
    assert (stats.mode, stats.due, stats.fetch_calls, stats.changed) == ("fetch", 1, 1, 1)
    rows = history(session, n.id)
    assert [(r.status, r.carrier_status, r.final_status, r.attempts) for r in rows] == [
        ("Pending", "sent", False, 1)
    ]

    # No change: the latest row is touched, no new row; not due again before 2 minutes.
    clock.advance(minutes=2, seconds=1)
    p.poll_day(session_scope, clock.sent_day)
    rows = history(session, n.id)
    assert [(r.status, r.attempts) for r in rows] == [("Pending", 2)]
    assert rows[0].last_check_timestamp == clock.now

    sim.state.force(n.carrier_reference_id, "delivered")
    clock.advance(minutes=5, seconds=1)
    p.poll_day(session_scope, clock.sent_day)
    rows = history(session, n.id)
    assert [(r.status, r.carrier_status, r.final_status, r.attempts) for r in rows] == [
        ("Pending", "sent", False, 2),
        ("Delivered", "delivered", True, 3),
    ]
    assert rows[1].delivery_timestamp is not None
    assert rows[1].failure_reason is None

    clock.advance(hours=5)
    session.expire_all()
    assert p.due_days(session) == []  # final: never polled again
    session.commit()


def test_bulk_pass_pages_through_the_list_and_settles_every_sid(
    session: Session, sim: SimulatorThread
) -> None:
    rows = submitted(session, sim, 7)
    failing = submitted(session, sim, 1, to="+15005550010")[0]  # 30003 at delivery
    for n in rows[:5]:
        sim.state.force(n.carrier_reference_id, "delivered")
    sim.state.force(rows[5].carrier_reference_id, "read")
    sim.state.force(rows[6].carrier_reference_id, "canceled")
    sim.state.force(failing.carrier_reference_id, "undelivered", 30003)
    clock = Clock()
    clock.advance(minutes=2)
    stats = poller(sim, clock).poll_day(session_scope, clock.sent_day, Mode.BULK)
    # 8 messages, 2 per page: 4 list calls, no fetch.
    assert (stats.list_calls, stats.fetch_calls, stats.matched, stats.finals) == (4, 0, 8, 8)
    assert stats.by_status == {"Delivered": 6, "Failed": 1, "Undeliverable": 1}
    last = history(session, failing.id)[-1]
    assert (last.status, last.status_code, last.final_status) == ("Undeliverable", "30003", True)
    assert last.failure_reason is not None and last.failure_reason.startswith("30003: Unreachable")
    assert history(session, rows[6].id)[-1].status == "Failed"


def test_auto_mode_lists_when_that_is_cheaper(session: Session, sim: SimulatorThread) -> None:
    submitted(session, sim, 6)
    clock = Clock()
    clock.advance(minutes=2)
    stats = poller(sim, clock).poll_day(session_scope, clock.sent_day)
    # 6 due, the day lists in 3 pages: listing wins over 6 fetches.
    assert (stats.mode, stats.list_calls, stats.fetch_calls, stats.changed) == ("bulk", 3, 0, 6)


def test_stragglers_missing_from_the_list_are_fetched(
    session: Session, sim: SimulatorThread
) -> None:
    rows = submitted(session, sim, 3)
    # Still queued at the carrier: no DateSent yet, so the day's list does not show it.
    sim.state.force(rows[0].carrier_reference_id, "queued")
    clock = Clock()
    clock.advance(minutes=2)
    stats = poller(sim, clock).poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert stats.list_calls == 1 and stats.fetch_calls == 1  # 2 listed: one page
    assert history(session, rows[0].id)[-1].carrier_status == "queued"
    assert all(history(session, n.id)[-1].carrier_status == "sent" for n in rows[1:])


def test_contradicting_late_report_is_an_event_not_applied(
    session: Session, sim: SimulatorThread
) -> None:
    rows = submitted(session, sim, 2)
    n = rows[0]
    sim.state.force(n.carrier_reference_id, "delivered")
    clock = Clock()
    clock.advance(minutes=2)
    p = poller(sim, clock)
    p.poll_day(session_scope, clock.sent_day, Mode.BULK)
    sim.state.force(n.carrier_reference_id, "undelivered", 30005)
    for _ in range(2):  # seen twice: one event
        clock.advance(minutes=10)
        stats = p.poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert stats.contradictions == 1
    assert [r.status for r in history(session, n.id)] == ["Delivered"]
    (event,) = events(session, "delivery_contradicting_report")
    assert event.event_data["final_status"] == "Delivered"
    assert event.event_data["reported_carrier_status"] == "undelivered"
    assert "+" not in str(event.event_data)  # no phone number


def test_unknown_status_is_recorded_raised_and_polled_again(
    session: Session, sim: SimulatorThread
) -> None:
    (n,) = submitted(session, sim, 1)
    sim.state.force(n.carrier_reference_id, "partially_delivered")
    clock = Clock()
    clock.advance(minutes=2)
    p = poller(sim, clock)
    stats = p.poll_day(session_scope, clock.sent_day)
    assert stats.unknown_statuses == 1
    (row,) = history(session, n.id)
    assert (row.status, row.carrier_status, row.final_status) == (
        "Unknown",
        "partially_delivered",
        False,
    )
    (event,) = events(session, "delivery_unknown_carrier_status")
    assert event.severity == "WARNING"
    sim.state.force(n.carrier_reference_id, "delivered")
    clock.advance(minutes=3)
    p.poll_day(session_scope, clock.sent_day)
    assert [r.status for r in history(session, n.id)] == ["Unknown", "Delivered"]


def test_deadline_gives_a_final_unknown_outcome(session: Session, sim: SimulatorThread) -> None:
    rows = submitted(session, sim, 2)
    sim.state.force(rows[1].carrier_reference_id, "delivered")
    clock = Clock()
    clock.advance(minutes=2)
    p = poller(sim, clock)
    p.poll_day(session_scope, clock.sent_day)
    clock.advance(hours=72)
    session.expire_all()
    (due,) = p.due_days(session)  # past the deadline: due whatever the backoff says
    session.commit()
    stats = p.poll_day(session_scope, due.day)
    assert stats.deadline_finals == 1
    last = history(session, rows[0].id)[-1]
    assert (last.status, last.final_status, last.carrier_status) == ("Unknown", True, "sent")
    assert last.failure_reason is not None and "within 72 hours" in last.failure_reason
    assert [r.status for r in history(session, rows[1].id)] == ["Delivered"]
    clock.advance(hours=1)
    session.expire_all()
    assert p.due_days(session) == []  # polling stopped
    session.commit()


def test_outage_during_the_list_loses_nothing_and_the_next_poll_resumes(
    session: Session, sim: SimulatorThread
) -> None:
    rows = submitted(session, sim, 6)
    for n in rows:
        sim.state.force(n.carrier_reference_id, "delivered")
    sim.state.config.outage_after_list_pages = 1  # page 1 answers, page 2 is a 503
    clock = Clock()
    clock.advance(minutes=2)
    p = poller(sim, clock)
    stats = p.poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert stats.carrier_error is not None and stats.changed == 2
    assert stats.deadline_finals == 0
    (event,) = events(session, "delivery_poll_carrier_error")
    assert event.event_data["changed"] == 2
    run = session.scalars(select(JobRun).where(JobRun.job == "delivery_poll")).one()
    assert run.status == "Failed" and run.stats["list_calls"] == 1
    session.commit()

    sim.state.config.outage = False
    clock.advance(minutes=1)
    stats = p.poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert stats.carrier_error is None and stats.changed == 4
    assert all([r.status for r in history(session, n.id)] == ["Delivered"] for n in rows)


def test_straggler_fetches_are_capped_per_round(
    session: Session, sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_FETCH_CAP", "1")
    get_settings.cache_clear()
    rows = submitted(session, sim, 3)
    for n in rows:
        sim.state.force(n.carrier_reference_id, "queued")  # none is listed
    clock = Clock()
    clock.advance(minutes=2)
    p = poller(sim, clock)
    stats = p.poll_day(session_scope, clock.sent_day, Mode.BULK)
    assert (stats.list_calls, stats.fetch_calls, stats.stragglers_left) == (1, 1, 2)
    clock.advance(seconds=1)
    session.expire_all()
    (due,) = p.due_days(session)
    session.commit()
    assert due.due == 2  # the two not fetched are still due next round
