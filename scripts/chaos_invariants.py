"""The chaos run's invariants, checked from the database, the simulators and the logs.

The qualification check recomputes the month in Python from the stored checks (and the
bank's ground truth, ``balance_for``), with ``phonenumbers`` directly: it shares no SQL
and no code with ``app.qualification``, so a bug there cannot hide itself here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import Engine, text

from app.devtools.simulators.core_banking import balance_for

MOBILE_TYPES = {phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}  # fmt: skip
FINAL_SUBMISSION = ("Submitted", "Failed", "Skipped")


@dataclass
class Verdict:
    name: str
    held: bool
    detail: str


def month_days(first: date) -> list[date]:
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return [first + timedelta(days=i) for i in range((nxt - first).days)]


def checks_exactly_once(engine: Engine, first: date, seed: int) -> list[Verdict]:
    days = month_days(first)
    with engine.connect() as conn:
        customers = conn.execute(
            text("SELECT id, account_number, is_active FROM customers")
        ).all()
        rows = conn.execute(
            text(
                "SELECT b.id, b.customer_id, b.check_date, b.balance, "
                "(SELECT count(*) FROM audit_log a WHERE a.entity_type = 'BalanceCheck' "
                " AND a.entity_id = b.id AND a.operation = 'INSERT') AS audits "
                "FROM daily_balance_checks b WHERE b.check_date BETWEEN :a AND :b"
            ),
            {"a": days[0], "b": days[-1]},
        ).all()
    active = {c.id for c in customers if c.is_active}
    account = {c.id: c.account_number for c in customers}
    per_pair: dict[tuple[Any, date], int] = defaultdict(int)
    wrong_balance = bad_audit = 0
    for r in rows:
        per_pair[(r.customer_id, r.check_date)] += 1
        if r.audits != 1:
            bad_audit += 1
        if Decimal(r.balance) != balance_for(seed, account[r.customer_id], r.check_date):
            wrong_balance += 1
    missing = sum(1 for c in active for d in days if per_pair.get((c, d), 0) == 0)
    dup = sum(1 for n in per_pair.values() if n > 1)
    inactive = sum(1 for (c, _), n in per_pair.items() if c not in active)
    expected = len(active) * len(days)
    return [
        Verdict(
            "one check per (active customer, day)",
            missing == 0 and dup == 0 and inactive == 0,
            f"{len(rows):,} checks for {expected:,} pairs; missing {missing}, duplicated {dup}, "
            f"inactive customers checked {inactive}",
        ),
        Verdict("one audit row per check", bad_audit == 0,
                f"{bad_audit} checks without exactly one INSERT audit row"),  # fmt: skip
        Verdict("stored balance = the bank's balance", wrong_balance == 0,
                f"{wrong_balance} checks differ from the core-banking ground truth"),  # fmt: skip
    ]


def _valid_mobile(raw: str | None) -> bool:
    if not raw:
        return False
    try:
        number = phonenumbers.parse(raw, "IL")
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and (
        phonenumbers.number_type(number) in MOBILE_TYPES
    )


def recompute_qualifications(
    engine: Engine, first: date, threshold: Decimal
) -> tuple[Verdict, set[Any]]:
    """Python's own answer: every calendar day >= threshold, active, valid mobile."""
    days = month_days(first)
    with engine.connect() as conn:
        customers = conn.execute(
            text("SELECT id, is_active, phone_number, anonymised_at FROM customers")
        ).all()
        checks = conn.execute(
            text("SELECT customer_id, check_date, balance FROM daily_balance_checks "
                 "WHERE check_date BETWEEN :a AND :b"),  # fmt: skip
            {"a": days[0], "b": days[-1]},
        ).all()
        stored = conn.execute(
            text("SELECT customer_id, qualified, qualifying_days, total_days_in_month "
                 "FROM monthly_qualifications WHERE qualification_month = :m"),  # fmt: skip
            {"m": first},
        ).all()
    passing: dict[Any, set[date]] = defaultdict(set)
    for c in checks:
        if Decimal(c.balance) >= threshold:
            passing[c.customer_id].add(c.check_date)
    expected: set[Any] = set()
    for cust in customers:
        if cust.is_active and cust.anonymised_at is None and _valid_mobile(cust.phone_number):
            if len(passing[cust.id]) == len(days):
                expected.add(cust.id)
    got = {s.customer_id for s in stored if s.qualified}
    wrong_days = sum(
        1 for s in stored
        if s.qualifying_days is not None and s.qualifying_days != len(passing[s.customer_id])
    )  # fmt: skip
    wrong_total = sum(1 for s in stored if s.total_days_in_month != len(days))
    dup = len(stored) - len({s.customer_id for s in stored})
    held = got == expected and wrong_days == 0 and wrong_total == 0 and dup == 0
    detail = (
        f"{len(expected)} qualified by recomputation, {len(got)} stored; "
        f"only stored {len(got - expected)}, only recomputed {len(expected - got)}; "
        f"qualifying_days wrong {wrong_days}, total_days wrong {wrong_total}, duplicates {dup}"
    )
    return Verdict("qualifications = independent recomputation", held, detail), expected


def notifications_exactly_once(
    engine: Engine, first: date, qualified: set[Any], per_recipient: dict[str, int]
) -> list[Verdict]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT q.customer_id, q.qualified, c.phone_number, count(n.id) AS n "
                "FROM monthly_qualifications q JOIN customers c ON c.id = q.customer_id "
                "LEFT JOIN notifications n ON n.qualification_id = q.id "
                "WHERE q.qualification_month = :m GROUP BY 1, 2, 3"
            ),
            {"m": first},
        ).all()
    not_one = sum(1 for r in rows if r.qualified and r.n != 1)
    unqualified = sum(r.n for r in rows if not r.qualified)
    phones = {r.phone_number for r in rows if r.customer_id in qualified}
    sent_once = sum(1 for p in phones if per_recipient.get(p, 0) == 1)
    twice = sum(1 for p in phones if per_recipient.get(p, 0) > 1)
    never = sum(1 for p in phones if per_recipient.get(p, 0) == 0)
    strangers = sum(n for p, n in per_recipient.items() if p not in phones)
    return [
        Verdict("one notification per qualified customer", not_one == 0 and unqualified == 0,
                f"{not_one} qualified customers without exactly one row; "
                f"{unqualified} rows for unqualified ones"),  # fmt: skip
        Verdict(
            "carrier received exactly one message each",
            sent_once == len(phones) and strangers == 0,
            f"{sent_once}/{len(phones)} exactly once; {twice} more than once, {never} never, "
            f"{strangers} messages to numbers not qualified",
        ),
    ]


def notifications_final(engine: Engine, first: date, deadline_hours: float) -> Verdict:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT n.submission_status, n.submission_timestamp, "
                "(SELECT d.final_status FROM delivery_status d WHERE d.notification_id = n.id "
                " ORDER BY d.updated_at DESC LIMIT 1) AS final "
                "FROM notifications n JOIN monthly_qualifications q ON q.id = n.qualification_id "
                "WHERE q.qualification_month = :m"
            ),
            {"m": first},
        ).all()
    now = datetime.utcnow()  # noqa: DTZ003  (the columns are naive UTC)
    deadline = timedelta(hours=deadline_hours)
    unsent = sum(1 for r in rows if r.submission_status not in FINAL_SUBMISSION)
    open_ = sum(
        1 for r in rows
        if r.submission_status == "Submitted" and not r.final
        and (r.submission_timestamp is None or now - r.submission_timestamp < deadline)
    )  # fmt: skip
    by_status: dict[str, int] = defaultdict(int)
    for r in rows:
        by_status[r.submission_status] += 1
    return Verdict(
        "every notification final (or past its deadline)",
        unsent == 0 and open_ == 0,
        f"{dict(by_status)}; not submitted/failed {unsent}; delivery still open {open_}",
    )


def explain_dead_letters(engine: Engine, dead: list[Any], all_final: bool) -> Verdict:
    """Each dead letter must be explained by the database: its work was done anyway."""
    unexplained: list[str] = []
    with engine.connect() as conn:
        for d in dead:
            ok = False
            if d.actor == "balances.check_shard":
                ok = bool(conn.scalar(text(
                    "SELECT finished_at IS NOT NULL FROM job_runs WHERE id = :r"),
                    {"r": d.args[0]})) or _day_complete(conn, d.args)  # fmt: skip
            elif d.actor == "notifications.send_batch":
                ok = not conn.scalar(
                    text("SELECT count(*) FROM notifications WHERE batch_id = :b "
                         "AND submission_status IN ('Queued', 'Sending')"),
                    {"b": d.args[0]},
                )  # fmt: skip
            elif d.actor == "qualification.run_month":
                ok = bool(conn.scalar(text(
                    "SELECT count(*) FROM job_runs WHERE job = 'qualification' "
                    "AND run_key = :m AND status = 'Finished'"), {"m": d.args[0]}))  # fmt: skip
            else:  # kicks, prepare, reconcile, polls: later rounds re-read the database
                ok = all_final
            if not ok:
                unexplained.append(f"{d.actor}{tuple(d.args)}")
    return Verdict(
        "no dead letter left unexplained",
        not unexplained,
        f"{len(dead)} dead-lettered, {len(unexplained)} unexplained"
        + (f": {', '.join(unexplained[:5])}" if unexplained else ""),
    )


def _day_complete(conn: Any, args: list[Any]) -> bool:
    day = conn.scalar(text("SELECT run_key FROM job_runs WHERE id = :r"), {"r": args[0]})
    if day is None:
        return False
    return not conn.scalar(text(
        "SELECT count(*) FROM customers c WHERE c.is_active AND NOT EXISTS (SELECT 1 FROM "
        "daily_balance_checks b WHERE b.customer_id = c.id AND b.check_date = :d)"),
        {"d": date.fromisoformat(day)})  # fmt: skip


def no_personal_data_in_logs(engine: Engine, logs: list[Path]) -> Verdict:
    """Every customer's phone (E.164 and national form), name and email, in every log."""
    with engine.connect() as conn:
        people = conn.execute(
            text("SELECT phone_number, first_name, last_name, email FROM customers")
        ).all()
    needles: set[str] = set()
    for p in people:
        if p.phone_number:
            needles.update({p.phone_number, "0" + p.phone_number[4:], p.phone_number[1:]})
        needles.update(v for v in (p.first_name, p.last_name, p.email) if v and len(v) >= 6)
    pattern = re.compile("|".join(re.escape(n) for n in sorted(needles, key=len, reverse=True)))
    hits: list[str] = []
    size = 0
    for log in logs:
        if not log.exists():
            continue
        content = log.read_text(encoding="utf-8", errors="replace")
        size += len(content)
        for match in pattern.finditer(content):
            hits.append(f"{log.name}:{content.count(chr(10), 0, match.start()) + 1}")
    return Verdict("no personal data in worker logs", not hits,
                   f"{size:,} characters of logs searched for {len(needles):,} values; "
                   f"{len(hits)} hits" + (f" ({', '.join(hits[:3])})" if hits else ""))  # fmt: skip
