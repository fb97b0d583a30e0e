"""``premium-notify status``: runs per stage, queues and dead letters, stuck rows."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.maintenance import status as ops_status
from app.maintenance.dlq import BrokerView
from app.models import JobRun
from tests.support.factories import (
    create_customer,
    create_delivery_status,
    create_notification,
    create_qualification,
    utcnow,
)
from worker.resources import Queue


def _arrange(session: Session) -> None:
    now = utcnow()
    for i, job in enumerate(("balance_checks", "balance_checks", "qualification")):
        session.add(
            JobRun(
                job=job,
                run_key=f"2026-11-0{i + 1}",
                status="Finished" if i else "Failed",
                started_at=now - timedelta(hours=3 - i),
                finished_at=now - timedelta(hours=3 - i, minutes=-5),
                stats={"checked": 100 + i, "missing": 2, "by_reason": {"timeout": 2}},
            )
        )
    c = create_customer(session)
    old = now - timedelta(days=5)
    create_notification(session, create_qualification(session, c), created_at=old)  # Queued
    q2 = create_qualification(session, create_customer(session))
    create_notification(session, q2, submission_status="Sending", claimed_at=old)
    q3 = create_qualification(session, create_customer(session))
    sent = create_notification(
        session,
        q3,
        submission_status="Submitted",
        carrier_reference_id="SM1",
        submission_timestamp=old,
    )
    create_delivery_status(session, sent, status="Pending")  # not final past the deadline
    q4 = create_qualification(session, create_customer(session))
    done = create_notification(
        session,
        q4,
        submission_status="Submitted",
        carrier_reference_id="SM2",
        submission_timestamp=old,
    )
    create_delivery_status(session, done, status="Delivered", final_status=True)
    create_notification(session, create_qualification(session, create_customer(session)))  # fresh
    session.commit()


def test_collect(session: Session, redis_client: Any) -> None:
    _arrange(session)
    redis_client.rpush("dramatiq:sms", "m1")
    redis_client.hset("dramatiq:sms.msgs", "m1", json.dumps({"message_timestamp": 0}))
    redis_client.zadd("dramatiq:delivery.XQ", {"d1": 1})

    view = BrokerView(redis_client, tuple(q.value for q in Queue))
    st = ops_status.collect(session, view, per_job=1)

    assert [(r["job"], r["run_key"], r["status"]) for r in st.runs] == [
        ("balance_checks", "2026-11-02", "Finished"),
        ("qualification", "2026-11-03", "Finished"),
    ]
    assert "checked=101" in st.runs[0]["summary"] and "by_reason" not in st.runs[0]["summary"]
    assert st.runs[0]["duration_s"] == 300.0
    stuck = {s["kind"]: s["rows"] for s in st.stuck}
    assert stuck == {"queued": 1, "sending": 1, "awaiting_final_delivery": 1}
    queues = {q["queue"]: q for q in st.queues}
    assert queues["sms"]["waiting"] == 1 and queues["sms"]["oldest_waiting_s"] > 1e9
    assert queues["delivery"]["dead_letters"] == 1
    assert st.broker_error is None


def test_broker_down_is_reported_not_fatal(session: Session) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(
        host="127.0.0.1", port=9, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    st = ops_status.collect(session, BrokerView(dead, ("sms",)))
    assert st.broker_error and "ConnectionError" in st.broker_error
    assert st.queues == []


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_cli_formats_and_exit_code(session: Session, fmt: str) -> None:
    from app.cli.main import cli

    _arrange(session)
    result = CliRunner().invoke(cli, ["status", "--format", fmt])
    assert result.exit_code == 0  # shown; only --check turns attention into an exit code
    checked = CliRunner().invoke(cli, ["status", "--check", "--format", fmt])
    assert checked.exit_code == 4  # stuck rows need attention
    if fmt == "json":
        payload = json.loads(result.output)
        assert {r["job"] for r in payload["runs"]} == {"balance_checks", "qualification"}
    elif fmt == "csv":
        assert result.output.splitlines()[0].startswith("section,job,run_key")
    else:
        assert "Stuck rows" in result.output
