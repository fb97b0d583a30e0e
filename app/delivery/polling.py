"""Polling the carrier until every submitted SMS has a final delivery status.

One *day batch* settles the messages submitted on one UTC day, with as few carrier calls
as the situation allows:

* **bulk** (the default when many messages are due): list the carrier's messages by
  ``DateSent = day``, ``PageSize`` up to 1000, following ``next_page_uri``; every listed
  sid of ours is updated, due or not (the answer costs nothing more). Each page is
  committed before the next is asked for, so an outage mid-list loses nothing: the next
  round starts again and finds the rest.
* **fetch** (per message): for the stragglers the list did not show (not yet sent at
  the carrier, so no DateSent; or sent after midnight), and as the whole strategy when
  fewer messages are due than the list would take pages. Capped per round
  (DELIVERY_FETCH_CAP); the rest wait for the next round.

Every carrier call first waits for the cross-worker read limiter. No database
connection is held during a carrier call: a day batch commits page by page in
transactions of the ``SessionScope`` its caller hands it (production passes
``app.db.session.session_scope``). After a successful round, messages past the deadline
that are still not final get the final 'Unknown' verdict.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from app.campaign import costs
from app.campaign.costs import Cost
from app.config import Settings, get_settings
from app.db import leases
from app.db.session import SessionScope, get_engine
from app.delivery.mapping import DEADLINE_REASON, Mapped, backoff_schedule, map_report
from app.delivery.repository import history, runs, tracking
from app.delivery.repository.history import Report
from app.delivery.repository.tracking import DueDay, Tracked
from app.models.enums import DeliveryState, Severity
from app.notifications.carrier import CarrierClient, CarrierError, CarrierMessage
from app.observability.events import record_event
from app.observability.metrics import (
    DELIVERY_CARRIER_CALLS,
    RATE_LIMIT_WAITS,
    count_delivery_status,
)
from app.ratelimit import RateLimiter, wait_for

log = logging.getLogger(__name__)

APPLY_CHUNK = 500  # fetched reports written per transaction


class Mode(StrEnum):
    AUTO = "auto"
    BULK = "bulk"
    FETCH = "fetch"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class PollStats:
    day: str
    mode: str = ""
    due: int = 0
    list_calls: int = 0
    fetch_calls: int = 0
    listed: int = 0  # messages the list returned (ours or not)
    matched: int = 0  # reports applied (ours)
    changed: int = 0  # new history rows
    unchanged: int = 0  # touched latest rows
    finals: int = 0
    unknown_statuses: int = 0
    contradictions: int = 0
    not_found: int = 0
    stragglers_left: int = 0  # due, not settled this round (fetch cap)
    deadline_finals: int = 0
    carrier_error: str | None = None
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def calls(self) -> int:
        return self.list_calls + self.fetch_calls

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "calls": self.calls}


def list_pages_needed(total: int, page_size: int) -> int:
    return max(1, math.ceil(total / page_size))


class DeliveryPoller:
    """Polls day batches through one carrier client (one per thread) and one limiter."""

    def __init__(
        self,
        carrier: CarrierClient,
        limiter: RateLimiter | None = None,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.carrier = carrier
        self.limiter = limiter
        self.settings = settings or get_settings()
        self.clock = clock
        self.backoff = backoff_schedule(self.settings.delivery_backoff_minutes)
        self.deadline = timedelta(hours=self.settings.delivery_deadline_hours)

    # --- planning ------------------------------------------------------------------
    def due_days(self, session: Session, lookback_days: int | None = None) -> list[DueDay]:
        """The submission days (UTC, oldest first) that have messages due for a check now."""
        days = lookback_days or self.settings.delivery_lookback_days
        return tracking.due_days(
            session,
            now=self.clock(),
            backoff=self.backoff,
            deadline=self.deadline,
            lookback=timedelta(days=days),
        )

    # --- one day -------------------------------------------------------------------
    def poll_day(
        self,
        scope: SessionScope,
        day: date,
        mode: Mode = Mode.AUTO,
        *,
        triggered_by: str = "worker",
        force: bool = False,
    ) -> PollStats:
        """Poll the day's open messages once; returns what happened (also in job_runs).

        Commits in transactions of ``scope`` (the run row, each page or chunk of reports,
        the run's end), never holding a connection during a carrier call.
        ``force`` (operators): every open message is due now, whatever the backoff says.
        One batch per day at a time: the day's lock says a live worker is on it
        (``runs.running_days``); a duplicate message for a day being polled returns.
        """
        with runs.day_lock(get_engine(), day) as held:
            if not held:
                log.info("delivery poll %s: another batch is on this day", day)
                return PollStats(day=day.isoformat())
            return self._poll_day_locked(scope, day, mode, triggered_by, force)

    def _poll_day_locked(
        self, scope: SessionScope, day: date, mode: Mode, triggered_by: str, force: bool
    ) -> PollStats:
        stats = PollStats(day=day.isoformat())
        with scope() as session:
            tracked = tracking.load_day(session, day)
            run_id, correlation_id = runs.start_run(session, day, triggered_by)
            # Under the day's lock: a poll run of the day whose lease expired is dead.
            leases.take_over_stale(session, runs.JOB, run_id, run_key=day.isoformat())
        now = self.clock()
        due = [
            t
            for t in tracked
            if not t.final and (force or t.is_due(now, self.backoff, self.deadline))
        ]
        stats.due = len(due)
        page_size = self.settings.delivery_page_size
        if mode is Mode.AUTO:
            # A list costs a call per page of the whole day; a fetch a call per message.
            pages = list_pages_needed(len(tracked), page_size)
            mode = Mode.BULK if len(due) > pages else Mode.FETCH
        stats.mode = str(mode)
        heartbeat = leases.Heartbeat(scope, run_id).start()  # the run's lease (app/db/leases)
        try:
            self._poll(scope, day, mode, tracked, due, stats, correlation_id)
        except Exception as exc:
            # Not a carrier error (database, bug): the run says so, the actor retries.
            self._finish(scope, run_id, stats, f"{type(exc).__name__}")
            raise
        finally:
            heartbeat.stop()
        self._finish(scope, run_id, stats, stats.carrier_error)
        for name, calls in (("list", stats.list_calls), ("fetch", stats.fetch_calls)):
            if calls:
                DELIVERY_CARRIER_CALLS.labels(name).inc(calls)
        log.info("delivery poll %s: %s", day, {k: v for k, v in stats.as_dict().items() if v})
        return stats

    def _poll(
        self,
        scope: SessionScope,
        day: date,
        mode: Mode,
        tracked: list[Tracked],
        due: list[Tracked],
        stats: PollStats,
        correlation_id: uuid.UUID,
    ) -> None:
        by_sid = {t.sid: t for t in tracked}
        open_sids = {t.sid for t in tracked if not t.final}
        cap = self.settings.delivery_fetch_cap
        try:
            if due:
                seen: set[str] = set()
                if mode is Mode.BULK:
                    seen = self._bulk(scope, day, by_sid, open_sids, stats, correlation_id)
                stragglers = [t for t in due if t.sid not in seen]
                self._fetch(scope, stragglers, stats, correlation_id)
                stats.stragglers_left = max(0, len(stragglers) - cap)
        except CarrierError as exc:
            # Everything settled so far is committed; the next round resumes from there.
            stats.carrier_error = f"{type(exc).__name__}: {exc.code_label}"
            with scope() as session:
                record_event(
                    session, "delivery_poll_carrier_error",
                    f"carrier error while polling day {day}: {exc.code_label}; "
                    "progress kept, next round resumes",
                    severity=Severity.WARNING, data=stats.as_dict(),
                    correlation_id=correlation_id,
                )  # fmt: skip
            return
        self._deadline(scope, tracked, stats, correlation_id)

    def _finish(
        self, scope: SessionScope, run_id: uuid.UUID, stats: PollStats, error: str | None
    ) -> None:
        with scope() as session:
            runs.finish_run(session, run_id, stats.as_dict(), error, utcnow())

    # --- carrier passes ----------------------------------------------------------------
    def _wait(self) -> None:
        wait_for(self.limiter, on_wait=RATE_LIMIT_WAITS.labels("carrier_reads").inc)

    def _bulk(
        self,
        scope: SessionScope,
        day: date,
        by_sid: dict[str, Tracked],
        open_sids: set[str],
        stats: PollStats,
        correlation_id: uuid.UUID,
    ) -> set[str]:
        seen: set[str] = set()
        pages: Iterator[list[CarrierMessage]] = self.carrier.list_pages_sent_on(
            day, page_size=self.settings.delivery_page_size
        )
        while True:
            self._wait()
            page = next(pages, None)  # the carrier call happens here
            if page is None:
                break
            stats.list_calls += 1
            stats.listed += len(page)
            ours = [m for m in page if m.sid in by_sid]
            self._apply(scope, [(by_sid[m.sid].id, m) for m in ours], stats, correlation_id)
            seen.update(m.sid for m in ours)
            if open_sids <= seen:
                break  # every open message of the day is answered: no more pages needed
        return seen

    def _fetch(
        self,
        scope: SessionScope,
        stragglers: list[Tracked],
        stats: PollStats,
        correlation_id: uuid.UUID,
    ) -> None:
        buffer: list[tuple[uuid.UUID, CarrierMessage]] = []
        try:
            for tracked in stragglers[: self.settings.delivery_fetch_cap]:
                self._wait()
                try:
                    message = self.carrier.fetch(tracked.sid)
                except CarrierError as exc:
                    if exc.status == 404:
                        stats.fetch_calls += 1
                        stats.not_found += 1  # the deadline will settle it
                        continue
                    raise
                stats.fetch_calls += 1
                buffer.append((tracked.id, message))
                if len(buffer) >= APPLY_CHUNK:
                    self._apply(scope, buffer, stats, correlation_id)
                    buffer = []
        finally:
            self._apply(scope, buffer, stats, correlation_id)  # keep what was fetched

    # --- recording ---------------------------------------------------------------------
    def _apply(
        self,
        scope: SessionScope,
        answers: list[tuple[uuid.UUID, CarrierMessage]],
        stats: PollStats,
        correlation_id: uuid.UUID,
    ) -> None:
        if not answers:
            return
        reports = []
        # The carrier's segments and price come with the status (issue 20: the cost).
        priced = [(nid, Cost.parse(m.num_segments, m.price, m.price_unit)) for nid, m in answers]
        for nid, m in answers:
            mapped = map_report(m.status, m.error_code, m.error_message)
            delivered_at = (
                (m.date_updated or self.clock())
                if mapped.status is DeliveryState.DELIVERED
                else None
            )
            reports.append(Report(nid, mapped, delivered_at))
        self._record(scope, reports, stats, correlation_id, priced)

    def _record(
        self,
        scope: SessionScope,
        reports: list[Report],
        stats: PollStats,
        correlation_id: uuid.UUID,
        priced: list[tuple[uuid.UUID, Cost | None]] | None = None,
    ) -> None:
        with scope() as session:
            result = history.apply_reports(session, reports, self.clock())
            costs.record(session, priced or [])  # the rows are locked by apply_reports
            unknown = [(nid, m) for nid, m in result.inserted if not m.known]
            for nid, m in unknown:
                record_event(
                    session, "delivery_unknown_carrier_status",
                    f"carrier status {m.carrier_status!r} is not in the mapping table; "
                    "recorded as Unknown, polling continues",
                    severity=Severity.WARNING,
                    data={"notification_id": str(nid), "carrier_status": m.carrier_status},
                    correlation_id=correlation_id,
                )  # fmt: skip
            contradictions = result.contradictions or []
            known = history.already_reported(
                session,
                "delivery_contradicting_report",
                [c["notification_id"] for c in contradictions],
            )
            for item in contradictions:
                if item["notification_id"] in known:
                    continue
                record_event(
                    session, "delivery_contradicting_report",
                    f"carrier reports {item['reported_carrier_status']!r} after the final "
                    f"status {item['final_status']}; the first final status is kept",
                    severity=Severity.WARNING, data=item, correlation_id=correlation_id,
                )  # fmt: skip
        stats.matched += len(reports)
        stats.changed += len(result.inserted)
        stats.unchanged += result.touched
        stats.unknown_statuses += len(unknown)
        stats.contradictions += len(contradictions)
        for _, m in result.inserted:
            stats.finals += int(m.final)
            stats.by_status[str(m.status)] = stats.by_status.get(str(m.status), 0) + 1
            count_delivery_status(str(m.status), m.final)

    def _deadline(
        self,
        scope: SessionScope,
        tracked: list[Tracked],
        stats: PollStats,
        correlation_id: uuid.UUID,
    ) -> None:
        """Final 'Unknown' for messages past the deadline that this round did not settle.

        Re-checked under the row lock by ``apply_reports``: a final status written by
        this round or a concurrent one wins over the verdict.
        """
        cutoff = self.clock() - self.deadline
        overdue = [t for t in tracked if not t.final and t.submitted_at <= cutoff]
        if not overdue:
            return
        hours = self.settings.delivery_deadline_hours
        reports = []
        for t in overdue:
            last = t.carrier_status or "none"
            reason = DEADLINE_REASON.format(hours=hours, carrier_status=last)[:255]
            mapped = Mapped(DeliveryState.UNKNOWN, True, last[:50], None, reason, known=True)
            reports.append(Report(t.id, mapped, None, deadline=True))
        before = stats.changed
        for i in range(0, len(reports), APPLY_CHUNK):
            self._record(scope, reports[i : i + APPLY_CHUNK], stats, correlation_id)
        stats.deadline_finals = stats.changed - before
        stats.matched -= len(reports)  # verdicts are not carrier reports
