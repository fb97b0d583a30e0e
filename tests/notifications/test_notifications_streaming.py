"""Streaming prepare: the outbox is committed chunk by chunk, each chunk's batches are
handed over after its commit (so sending overlaps preparing), and nothing is duplicated."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.models import Notification
from app.months import Month
from app.notifications.outbox import prepare_streaming
from tests.support.carrier import MONTH, outbox, qualified_customers
from tests.support.factories import create_customer, create_qualification


def test_chunks_commit_before_their_batches_are_handed_over(
    session: Session, sms_env: object, monkeypatch: pytest.MonkeyPatch, engine: object
) -> None:
    monkeypatch.setenv("SMS_BATCH_SIZE", "2")
    from app.config import get_settings

    get_settings.cache_clear()
    qualified_customers(session, 7)
    gone = create_customer(session, is_active=False)
    create_qualification(session, gone, qualification_month=MONTH)
    session.commit()

    handed: list[list[uuid.UUID]] = []
    committed_when_handed: list[int] = []

    def on_batches(batches: list[uuid.UUID]) -> None:
        # A separate connection sees the chunk's rows: they were committed first.
        with Session(session.get_bind()) as other:
            committed_when_handed.append(
                other.scalar(select(func.count()).select_from(Notification)) or 0
            )
        handed.append(batches)

    result = prepare_streaming(
        session_scope, Month.of(MONTH), on_batches, chunk_rows=3, triggered_by="test"
    )

    rows = outbox(session)
    assert len(rows) == 8  # 7 queued + 1 skipped (inactive)
    assert result.queued == 7 and result.skipped == {"INACTIVE": 1} and result.planned == 8
    assert len(handed) == 3  # chunks of 3, 3, 2 qualifications
    assert committed_when_handed == [3, 6, 8]
    queued_batches = {r.batch_id for r in rows if r.submission_status == "Queued"}
    assert {b for chunk in handed for b in chunk} == queued_batches
    # One run accumulates every chunk's counts.
    stats = session.execute(
        text("SELECT stats FROM job_runs WHERE job = 'notifications'")
    ).scalar_one()
    assert stats["queued"] == 7

    again = prepare_streaming(
        session_scope, Month.of(MONTH), on_batches, chunk_rows=3, triggered_by="test"
    )
    assert again.queued == 0 and again.planned == 0
    assert again.already_queued == 7  # still waiting from the first prepare
    assert len(outbox(session)) == 8
