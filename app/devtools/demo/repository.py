"""SQL of the demo: its read-only questions (``state``: counts and run statuses only;
nothing here reads a name, a number or a balance) and the creation of its database.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import psycopg2
from psycopg2 import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


def db_now(session: Session) -> datetime:
    """The database's LOCALTIMESTAMP (UTC, like every timestamp column)."""
    value: datetime = session.execute(text("SELECT LOCALTIMESTAMP")).scalar_one()
    return value


def _count(session: Session, sql: str, **params: Any) -> int:
    return int(session.execute(text(sql), params).scalar_one() or 0)


def count_active_customers(session: Session) -> int:
    """Active customers."""
    return _count(session, "SELECT count(*) FROM customers WHERE is_active")


def count_checks_between(session: Session, first: date, last: date) -> int:
    """Balance checks dated ``first`` to ``last`` (inclusive)."""
    return _count(
        session,
        "SELECT count(*) FROM daily_balance_checks WHERE check_date BETWEEN :a AND :b",
        a=first,
        b=last,
    )


def count_qualified(session: Session, month_first: date) -> int:
    """Qualified customers of the month starting on ``month_first``."""
    return _count(
        session,
        "SELECT count(*) FROM monthly_qualifications WHERE qualification_month = :m AND qualified",
        m=month_first,
    )


def latest_status_counts(
    session: Session, job: str, keys: list[str], since: datetime
) -> dict[str, int]:
    """Distinct run keys of ``job`` started since ``since``, by their latest status."""
    rows = session.execute(
        text(
            "SELECT status, count(*) FROM (SELECT DISTINCT ON (run_key) run_key, status "
            "FROM job_runs WHERE job = :job AND run_key = ANY(:keys) AND started_at >= :since "
            "ORDER BY run_key, started_at DESC) latest GROUP BY status"
        ),
        {"job": job, "keys": keys, "since": since},
    )
    return {str(status): int(n) for status, n in rows}


def latest_run(session: Session, job: str, key: str, since: datetime) -> tuple[str, str | None]:
    """(status, error) of the newest run of ``job``/``key`` since ``since``; ('', None)."""
    row = session.execute(
        text(
            "SELECT status, error FROM job_runs WHERE job = :job AND run_key = :key "
            "AND started_at >= :since ORDER BY started_at DESC LIMIT 1"
        ),
        {"job": job, "key": key, "since": since},
    ).first()
    return (str(row.status), row.error) if row else ("", None)


def latest_event_description(session: Session, event_type: str, since: datetime) -> str | None:
    """The description of the newest ``event_type`` system event since ``since``."""
    row = session.execute(
        text(
            "SELECT description FROM system_events WHERE event_type = :t AND created_at >= :s "
            "ORDER BY created_at DESC LIMIT 1"
        ),
        {"t": event_type, "s": since},
    ).first()
    return None if row is None else str(row.description)


def notification_status_counts(session: Session, month_first: date) -> dict[str, int]:
    """The month's notifications by submission status."""
    rows = session.execute(
        text(
            "SELECT n.submission_status, count(*) FROM notifications n "
            "JOIN monthly_qualifications mq ON mq.id = n.qualification_id "
            "WHERE mq.qualification_month = :m GROUP BY 1"
        ),
        {"m": month_first},
    )
    return {str(status): int(n) for status, n in rows}


def delivery_counts(session: Session, month_first: date, submitted: str) -> tuple[int, int]:
    """(the month's messages in status ``submitted``, those with a final delivery status)."""
    row = session.execute(
        text(
            "SELECT count(*) AS submitted, count(*) FILTER (WHERE EXISTS ("
            "  SELECT 1 FROM delivery_status ds WHERE ds.notification_id = n.id "
            "  AND ds.final_status)) AS final "
            "FROM notifications n JOIN monthly_qualifications mq ON mq.id = n.qualification_id "
            "WHERE mq.qualification_month = :m AND n.submission_status = :submitted"
        ),
        {"m": month_first, "submitted": submitted},
    ).one()
    return int(row.submitted), int(row.final)


def latest_delivery_status_counts(
    session: Session, month_first: date, submitted: str
) -> dict[str, int]:
    """The month's messages in status ``submitted`` by their latest delivery status
    ('not polled' when they have none)."""
    rows = session.execute(
        text(
            "SELECT COALESCE(ds.status, 'not polled'), count(*) FROM notifications n "
            "JOIN monthly_qualifications mq ON mq.id = n.qualification_id "
            "LEFT JOIN LATERAL (SELECT status FROM delivery_status d "
            "  WHERE d.notification_id = n.id ORDER BY d.created_at DESC, d.id DESC LIMIT 1"
            ") ds ON true "
            "WHERE mq.qualification_month = :m AND n.submission_status = :submitted GROUP BY 1"
        ),
        {"m": month_first, "submitted": submitted},
    )
    return {str(status): int(n) for status, n in rows}


def _admin_dsn(server_url: str) -> str:
    url = make_url(server_url).set(drivername="postgresql", database="postgres")
    return url.render_as_string(hide_password=False)


def recreate_database(server_url: str, name: str) -> str:
    """Drop ``name`` (with its connections) and create it empty; returns its URL."""
    conn = psycopg2.connect(_admin_dsn(server_url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            cur.execute(drop.format(sql.Identifier(name)))
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
