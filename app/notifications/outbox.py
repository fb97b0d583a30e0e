"""The outbox: one ``notifications`` row per qualified customer of a month.

Preparing a month renders each qualified customer's message, counts its segments and
inserts it as 'Queued' with a ``batch_id`` (the unit a send actor works on). Customers
who became inactive, were anonymised, opted out of SMS (``app.campaign``: OPTED_OUT), or
whose number is no longer a valid mobile since qualification get a row too, as
'Skipped' with the reason in ``status_reason``, so the decision is recorded and re-running
prepare never reconsiders them. The insert is ``ON CONFLICT (qualification_id) DO
NOTHING``: re-running adds nothing.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from app.campaign import costs
from app.campaign.repository import OPTED_OUT
from app.config import Settings, get_settings
from app.db.audit import set_audit_context
from app.db.session import SessionScope
from app.models.enums import SubmissionStatus
from app.months import Month
from app.notifications import repository as repo
from app.notifications.segments import analyze
from app.notifications.templates import Template, get_template
from app.observability.events import record_event
from app.phones import classify

JOB = "notifications"


class OutboxError(ValueError):
    """The month cannot be prepared (not qualified yet, bad template)."""


@dataclass
class Planned:
    qualification_id: uuid.UUID
    customer_id: uuid.UUID
    phone_number: str
    content: str
    characters: int
    segments: int
    encoding: str
    skip_reason: str | None = None


@dataclass
class PrepareResult:
    month: str
    run_id: uuid.UUID | None
    correlation_id: uuid.UUID | None
    dry_run: bool
    queued: int = 0  # new Queued rows (or, dry run, rows that would be queued)
    skipped: dict[str, int] = field(default_factory=dict)
    segments: int = 0  # segments of the new Queued rows
    encodings: dict[str, int] = field(default_factory=dict)
    already_queued: int = 0  # Queued rows from an earlier prepare, not yet sent
    already_queued_segments: int = 0
    batches: list[uuid.UUID] = field(default_factory=list)
    planned: int = 0  # qualifications handled by this call (queued + skipped)
    multi_segment: int = 0  # new Queued rows longer than one segment (each costs more)
    warnings: list[str] = field(default_factory=list)  # for the operator (app.campaign)

    @property
    def cost_segments(self) -> int:
        """Segments this month will still cost: new rows plus those already waiting."""
        return self.segments + self.already_queued_segments

    def as_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "run_id": str(self.run_id) if self.run_id else None,
            "dry_run": self.dry_run,
            "queued": self.queued,
            "skipped": self.skipped,
            "segments": self.segments,
            "encodings": self.encodings,
            "already_queued": self.already_queued,
            "cost_segments": self.cost_segments,
            "multi_segment": self.multi_segment,
            "batches": len(self.batches),
        }


def plan_month(
    session: Session,
    month: Month,
    template: Template,
    settings: Settings,
    limit: int | None = None,
) -> list[Planned]:
    """Render the messages of the month's qualified customers not yet in the outbox."""
    planned: list[Planned] = []
    candidates = repo.unplanned(session, month, limit)
    for qid, cid, first, last, phone, active, anonymised, valid_mobile, fresh, out in candidates:
        # The verdict stored with the number is trusted while it is newer than the row
        # (imports write both together); otherwise the number is classified again.
        if fresh and phone:
            e164, is_mobile = (phone if valid_mobile else None), bool(valid_mobile)
        else:
            verdict = classify(phone, settings.default_phone_region)
            e164, is_mobile = verdict.e164, verdict.is_valid_mobile
        content = template.render(first_name=first, last_name=last, month=month)
        info = analyze(content)
        reason = (
            "ANONYMISED" if anonymised is not None
            else "INACTIVE" if not active
            else OPTED_OUT if out
            else "INVALID_PHONE" if not is_mobile
            else "TOO_MANY_SEGMENTS" if info.segments > settings.sms_max_segments
            else None
        )  # fmt: skip
        planned.append(
            Planned(
                qualification_id=qid,
                customer_id=cid,
                phone_number=(e164 or phone or "")[:20],
                content=content,
                characters=info.characters,
                segments=info.segments,
                encoding=str(info.encoding),
                skip_reason=reason,
            )
        )
    return planned


def prepare_month(
    session: Session,
    month: Month,
    *,
    dry_run: bool = False,
    triggered_by: str = "worker",
    settings: Settings | None = None,
    limit: int | None = None,
    count_waiting: bool = True,
) -> PrepareResult:
    """Insert the month's outbox rows (or, dry run, only count them). Never commits.

    ``count_waiting``: also count the Queued rows of earlier prepares (``already_queued``);
    the streaming prepare asks only in its first chunk, before it has queued any itself.
    """
    settings = settings or get_settings()
    if not repo.has_qualifications(session, month):
        raise OutboxError(f"no qualification results for {month}: qualify it first")
    template = get_template(settings=settings)
    planned = plan_month(session, month, template, settings, limit)
    result = PrepareResult(str(month), None, None, dry_run)
    result.planned = len(planned)
    if count_waiting:
        result.already_queued, result.already_queued_segments = repo.waiting(session, month)
    to_send = [p for p in planned if p.skip_reason is None]
    result.queued = len(to_send)
    result.segments = sum(p.segments for p in to_send)
    result.encodings = dict(Counter(p.encoding for p in to_send))
    result.skipped = dict(Counter(p.skip_reason for p in planned if p.skip_reason))
    result.multi_segment = sum(1 for p in to_send if p.segments > 1)
    result.warnings = costs.prepare_warnings(
        template, settings.sms_max_segments, result.multi_segment, result.queued
    )
    if dry_run:
        return result

    run = repo.locked_run(session, JOB, str(month), triggered_by)
    result.run_id, result.correlation_id = run.id, run.correlation_id
    # The audit trigger reads the transaction's correlation id (rows carry it too).
    set_audit_context(session, run.correlation_id)
    size = settings.sms_batch_size
    batch_ids = [uuid.uuid4() for _ in range(0, len(to_send), size)]
    values: list[dict[str, Any]] = []
    for i, p in enumerate(to_send):
        values.append(_row(p, run.correlation_id, batch_ids[i // size]))
    for p in planned:
        if p.skip_reason:
            values.append(_row(p, run.correlation_id, None))
    repo.insert_outbox(session, values)
    result.batches = batch_ids
    stats = dict(run.stats or {})
    for key in ("queued", "segments"):
        stats[key] = int(stats.get(key, 0)) + getattr(result, key)
    for reason, n in result.skipped.items():
        stats[f"skipped_{reason}"] = int(stats.get(f"skipped_{reason}", 0)) + n
    repo.set_run_stats(session, run.id, stats)
    # The month's outbox run is Finished once a prepare planned the rest of the month.
    repo.mark_run(session, run.id, finished=limit is None or result.planned < limit)
    if result.queued:
        costs.raise_month_warning(
            session, month, result.warnings, {"multi_segment": result.multi_segment,
            "queued": result.queued, "segments": result.segments}, run.correlation_id,
        )  # fmt: skip
    if result.skipped:
        record_event(
            session,
            "notifications_skipped",
            f"{sum(result.skipped.values())} qualified customers not texted for {result.month}",
            data={"month": result.month, "reasons": result.skipped},
            correlation_id=run.correlation_id,
        )
    return result


def _row(p: Planned, correlation_id: uuid.UUID, batch_id: uuid.UUID | None) -> dict[str, Any]:
    return {
        "customer_id": p.customer_id,
        "qualification_id": p.qualification_id,
        "phone_number": p.phone_number,
        "sms_content": p.content,
        "character_count": p.characters,
        "segment_count": p.segments,
        "batch_id": batch_id,
        "submission_status": SubmissionStatus.SKIPPED if p.skip_reason else SubmissionStatus.QUEUED,
        "status_reason": p.skip_reason,
        "retry_count": 0,
        "correlation_id": correlation_id,
    }


def prepare_streaming(
    scope: SessionScope,
    month: Month,
    on_batches: Callable[[list[uuid.UUID]], None],
    *,
    chunk_rows: int | None = None,
    triggered_by: str = "worker",
    settings: Settings | None = None,
) -> PrepareResult:
    """Prepare the month chunk by chunk, one transaction of ``scope`` each, handing every
    chunk's new batches to ``on_batches`` right after its commit, so sending overlaps
    preparing.

    Commits once per chunk, so it is handed a ``SessionScope`` (production passes
    ``app.db.session.session_scope``) rather than a session. Safe to run again or
    concurrently: every chunk's insert is ON CONFLICT DO NOTHING, and a chunk only plans
    qualifications that have no outbox row yet.
    """
    settings = settings or get_settings()
    chunk_rows = chunk_rows or max(settings.sms_batch_size, 20 * settings.sms_batch_size)
    total = PrepareResult("", None, None, False)
    first = True
    while True:
        with scope() as session:
            part = prepare_month(
                session,
                month,
                triggered_by=triggered_by,
                settings=settings,
                limit=chunk_rows,
                count_waiting=first,
            )
        on_batches(part.batches)
        total.month, total.run_id, total.correlation_id = (
            part.month,
            part.run_id,
            part.correlation_id,
        )
        total.queued += part.queued
        total.segments += part.segments
        total.planned += part.planned
        total.multi_segment += part.multi_segment
        total.warnings = total.warnings or part.warnings
        total.batches += part.batches
        for key, n in part.skipped.items():
            total.skipped[key] = total.skipped.get(key, 0) + n
        for key, n in part.encodings.items():
            total.encodings[key] = total.encodings.get(key, 0) + n
        if first:  # the first chunk saw the Queued rows of earlier prepares only
            total.already_queued = part.already_queued
            total.already_queued_segments = part.already_queued_segments
            first = False
        if part.planned < chunk_rows:
            return total
