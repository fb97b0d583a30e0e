"""SQL of the notification stage (the outbox, sending, the reconciler, the operator CLI).

Nothing here commits: the caller owns the transaction (README, "Architecture"). The
claim and record statements of a send are single set-based statements on purpose
(docs/design.md decision 2): a claim is ``UPDATE ... RETURNING`` under ``SKIP LOCKED``, and
outcomes are written for a whole chunk in one ``UPDATE ... FROM jsonb_to_recordset``,
guarded by the claim time so a row the reconciler took back is never overwritten.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app.db.leases import LEASE_SECONDS
from app.models import Customer, CustomerOptOut, JobRun, MonthlyQualification, Notification
from app.models.enums import RunStatus, SubmissionStatus
from app.months import Month

# --- the outbox ------------------------------------------------------------------------


class Candidate(NamedTuple):
    """A qualified customer of the month with no outbox row yet, as the planner needs it."""

    qualification_id: uuid.UUID
    customer_id: uuid.UUID
    first_name: str
    last_name: str
    phone_number: str | None
    is_active: bool | None
    anonymised_at: datetime | None
    phone_is_valid_mobile: bool | None
    verdict_fresh: bool | None  # the stored phone verdict is newer than the customer row
    opted_out: bool  # the customer's latest SMS choice is to be left alone (app.campaign)


def has_qualifications(session: Session, month: Month) -> bool:
    """True once the month has qualification results (qualified or not)."""
    found = session.scalar(
        select(MonthlyQualification.id)
        .where(MonthlyQualification.qualification_month == month.first)
        .limit(1)  # without it the driver fetches every id of the month first
    )
    return found is not None


def unplanned(session: Session, month: Month, limit: int | None) -> list[Candidate]:
    """The month's qualified customers not yet in the outbox, in qualification id order."""
    latest_choice = (
        select(CustomerOptOut.opted_out)
        .where(CustomerOptOut.customer_id == Customer.id)
        .order_by(CustomerOptOut.recorded_at.desc(), CustomerOptOut.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            MonthlyQualification.id,
            Customer.id,
            Customer.first_name,
            Customer.last_name,
            Customer.phone_number,
            Customer.is_active,
            Customer.anonymised_at,
            Customer.phone_is_valid_mobile,
            (Customer.last_verified >= Customer.updated_at).label("verdict_fresh"),
            func.coalesce(latest_choice, False).label("opted_out"),
        )
        .join(Customer, Customer.id == MonthlyQualification.customer_id)
        .outerjoin(Notification, Notification.qualification_id == MonthlyQualification.id)
        .where(
            MonthlyQualification.qualification_month == month.first,
            MonthlyQualification.qualified.is_(True),
            Notification.id.is_(None),
        )
        .order_by(MonthlyQualification.id)
        .limit(limit)
    ).all()
    return [Candidate._make(row) for row in rows]


def waiting(session: Session, month: Month) -> tuple[int, int]:
    """(rows, segments) of the month still Queued from earlier prepares."""
    rows, segments = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(func.coalesce(Notification.segment_count, 1)), 0),
        )
        .join(MonthlyQualification, MonthlyQualification.id == Notification.qualification_id)
        .where(
            MonthlyQualification.qualification_month == month.first,
            Notification.submission_status == SubmissionStatus.QUEUED,
        )
    ).one()
    return int(rows), int(segments)


def locked_run(session: Session, job: str, run_key: str, triggered_by: str) -> JobRun:
    """The latest run of ``job`` for ``run_key``, locked for this transaction; or a new one."""
    run = session.scalars(
        select(JobRun)
        .where(JobRun.job == job, JobRun.run_key == run_key)
        .order_by(JobRun.started_at.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if run is None:
        run = JobRun(job=job, run_key=run_key, triggered_by=triggered_by)
        session.add(run)
        session.flush()
        session.refresh(run)
    return run


def set_run_stats(session: Session, run_id: uuid.UUID, stats: dict[str, Any]) -> None:
    session.execute(update(JobRun).where(JobRun.id == run_id).values(stats=stats))


def mark_run(session: Session, run_id: uuid.UUID, *, finished: bool) -> None:
    """Finished once the month is prepared; else Running with a fresh lease (the next
    chunk renews it; a prepare that died is stale, and the next prepare reopens the run)."""
    now = func.localtimestamp()
    values: dict[str, Any] = (
        {"status": str(RunStatus.FINISHED), "finished_at": now, "heartbeat_at": now}
        if finished
        else {
            "status": str(RunStatus.RUNNING),
            "finished_at": None,
            "heartbeat_at": now,
            "lease_expires_at": now + timedelta(seconds=LEASE_SECONDS),
        }
    )
    session.execute(update(JobRun).where(JobRun.id == run_id).values(**values))


def insert_outbox(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert outbox rows; a qualification that already has one is left alone."""
    if not rows:
        return
    # executemany with RETURNING: SQLAlchemy sends it as pages of multi-row INSERTs
    # ("insertmanyvalues"), neither row by row nor as one giant compiled statement.
    table = cast(Table, Notification.__table__)
    session.connection().execute(
        insert(table)
        .on_conflict_do_nothing(index_elements=["qualification_id"])
        .returning(table.c.id),
        rows,
    )


def queued_batches(session: Session, month: Month | None = None) -> list[uuid.UUID]:
    """Batch ids that still have Queued rows (of one month, or of all)."""
    query = select(Notification.batch_id).where(
        Notification.submission_status == SubmissionStatus.QUEUED,
        Notification.batch_id.is_not(None),
    )
    if month is not None:
        query = query.join(
            MonthlyQualification, MonthlyQualification.id == Notification.qualification_id
        ).where(MonthlyQualification.qualification_month == month.first)
    return [b for (b,) in session.execute(query.distinct()).all() if b is not None]


def customer_names(session: Session, account_number: str) -> tuple[str, str] | None:
    """(first name, last name) of the customer with this account number (template preview)."""
    row = session.execute(
        select(Customer.first_name, Customer.last_name).where(
            Customer.account_number == account_number
        )
    ).first()
    return None if row is None else (row[0], row[1])


# --- sending: claim, renew, record ---------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """An outbox row in 'Sending', as claimed (``claimed_at`` guards every later write)."""

    id: uuid.UUID
    phone_number: str
    body: str
    segments: int
    claimed_at: datetime
    retry_count: int


CLAIM_SQL = text("""
WITH c AS (
    SELECT id FROM notifications
    WHERE batch_id = :batch_id AND submission_status = 'Queued'
    ORDER BY id LIMIT :n
    FOR UPDATE SKIP LOCKED
)
UPDATE notifications n
SET submission_status = 'Sending', claimed_at = LOCALTIMESTAMP, updated_at = LOCALTIMESTAMP
FROM c WHERE n.id = c.id AND n.submission_status = 'Queued'
RETURNING n.id, n.phone_number, n.sms_content, n.segment_count, n.claimed_at, n.retry_count
""")

RECORD_SQL = text("""
UPDATE notifications n SET
    submission_status = v.status,
    carrier_reference_id = COALESCE(v.sid, n.carrier_reference_id),
    submission_timestamp = COALESCE(v.submitted_at, n.submission_timestamp),
    error_code = v.error_code,
    status_reason = v.reason,
    retry_count = COALESCE(n.retry_count, 0) + v.inc,
    claimed_at = CASE WHEN v.status = 'Queued' THEN NULL ELSE n.claimed_at END,
    updated_at = LOCALTIMESTAMP
FROM jsonb_to_recordset(CAST(:payload AS jsonb)) AS v(
    id uuid, claimed_at timestamp, status text, sid text, submitted_at timestamp,
    error_code text, reason text, inc int)
WHERE n.id = v.id AND n.submission_status = 'Sending' AND n.claimed_at = v.claimed_at
RETURNING n.id
""")


# Renews a claim right before its carrier call (see Sender._fresh_claim); guarded like
# RECORD_SQL, so a row the reconciler took back is never sent by this worker too.
REFRESH_SQL = text("""
UPDATE notifications SET claimed_at = LOCALTIMESTAMP
WHERE id = :id AND submission_status = 'Sending' AND claimed_at = :claimed_at
RETURNING claimed_at
""")


def claim_chunk(session: Session, batch_id: uuid.UUID, n: int) -> list[Claimed]:
    """Claim up to ``n`` Queued rows of the batch (Queued -> Sending, ``claimed_at`` now)."""
    rows = session.execute(CLAIM_SQL, {"batch_id": batch_id, "n": n}).all()
    return [Claimed(r[0], r[1], r[2], r[3] or 1, r[4], r[5] or 0) for r in rows]


def renew_claim(session: Session, claimed: Claimed) -> datetime | None:
    """The claim's new time, or None if the row is no longer ours (claimed at that time)."""
    renewed: datetime | None = session.execute(
        REFRESH_SQL, {"id": claimed.id, "claimed_at": claimed.claimed_at}
    ).scalar_one_or_none()
    return renewed


def record_outcomes(session: Session, payload: str) -> set[uuid.UUID]:
    """Write a chunk's outcomes (a JSON list, see ``SendResult.as_json``); returns the ids
    written: a row missing from it was no longer in 'Sending' with that claim time."""
    return {row[0] for row in session.execute(RECORD_SQL, {"payload": payload})}


def submitted_sids(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The carrier sid of each of ``ids`` that is 'Submitted' (settled by whoever was first:
    a status callback, the reconciler, the sender)."""
    if not ids:
        return {}
    rows = session.execute(
        select(Notification.id, Notification.carrier_reference_id).where(
            Notification.id.in_(ids),
            Notification.submission_status == SubmissionStatus.SUBMITTED,
            Notification.carrier_reference_id.is_not(None),
        )
    ).all()
    return {r[0]: r[1] for r in rows if r[1] is not None}


# --- the reconciler ----------------------------------------------------------------------


def stuck_sending(
    session: Session, older_than: datetime, limit: int
) -> list[tuple[Claimed, uuid.UUID | None]]:
    """Rows in 'Sending' claimed before ``older_than`` (oldest first), with their batch."""
    rows = session.execute(
        select(
            Notification.id,
            Notification.phone_number,
            Notification.sms_content,
            Notification.segment_count,
            Notification.claimed_at,
            Notification.retry_count,
            Notification.batch_id,
        )
        .where(
            Notification.submission_status == SubmissionStatus.SENDING,
            Notification.claimed_at < older_than,
        )
        .order_by(Notification.claimed_at)
        .limit(limit)
    ).all()
    # claimed_at is never NULL in 'Sending' here: the WHERE compares it.
    return [(Claimed(r[0], r[1], r[2], r[3] or 1, r[4], r[5] or 0), r[6]) for r in rows if r[4]]


def stale_queued_batches(session: Session, older_than: datetime) -> set[uuid.UUID]:
    """Batches with Queued rows nobody touched since ``older_than``; touches them.

    Touching ``updated_at`` (not audited: nothing else changes) makes the next round
    wait a full period again instead of re-enqueueing the same batch every time.
    """
    batches = (
        update(Notification)
        .where(
            Notification.submission_status == SubmissionStatus.QUEUED,
            Notification.updated_at < older_than,
            Notification.batch_id.is_not(None),
        )
        .values(updated_at=text("LOCALTIMESTAMP"))
        .returning(Notification.batch_id)
    )
    return {b for (b,) in session.execute(batches).all() if b is not None}
