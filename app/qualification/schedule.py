"""Which closed months the monthly kick must still qualify or hand to the notifications.

periodiq keeps no state and loses a kick missed while it was down, so every kick looks
back over a window of closed months: a month without a finished qualification run is
(re)qualified; a month with one whose notification stage was never started (e.g. an
operator ran it in-process) gets that stage started. Both steps are idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.months import Month, closed_months
from app.qualification.repository import runs


@dataclass(frozen=True)
class KickPlan:
    to_qualify: list[Month]
    to_notify: list[Month]


def plan_kick(session: Session, tz: ZoneInfo, window: int, now: datetime | None = None) -> KickPlan:
    candidates = closed_months(tz, window, now)
    finished = runs.finished_months(session, candidates)
    notified = runs.months_notified(session, candidates)
    return KickPlan(
        to_qualify=[m for m in candidates if str(m) not in finished],
        to_notify=[m for m in candidates if str(m) in finished and str(m) not in notified],
    )
