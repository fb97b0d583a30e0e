"""What the chaos run watches while it runs, and the callbacks' share of the work.

* **Final statuses never change**: the driver samples every final ``delivery_status`` row
  all along the SMS phase; a notification whose final status differs between two samples
  is a violation, and so, at the end, is one with two final rows or a row after its final
  one. The final status must also be the carrier's own (the simulator's timeline).
* **Send outcomes are not lost to conflicts**: no ``notification_record_conflict`` event
  (a callback that settled a row before the sender recorded it is no conflict).
* Where the finals came from (a callback or a poll), what became of the callbacks, and
  how the sends left ambiguous were settled.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from chaos_invariants import Verdict
from sqlalchemy import Engine, text

FINAL_WORDS = ("delivered", "undelivered", "failed", "canceled", "read")

_STRUCTURE = text(
    """
    SELECT count(*) FILTER (WHERE finals > 1) AS twice,
           count(*) FILTER (WHERE after_final > 0) AS after
    FROM (
        SELECT d.notification_id,
               count(*) FILTER (WHERE d.final_status) AS finals,
               count(*) FILTER (WHERE d.created_at > f.first_final) AS after_final
        FROM delivery_status d
        JOIN (SELECT notification_id, min(created_at) AS first_final FROM delivery_status
              WHERE final_status GROUP BY notification_id) f USING (notification_id)
        GROUP BY d.notification_id
    ) x
    """
)
_BY_CALLBACK = text(
    "SELECT count(DISTINCT notification_id) FROM callback_receipts WHERE kind = 'status' "
    "AND outcome IN ('applied', 'settled') AND message_status = ANY(:finals)"
)


class FinalWatch:
    """Samples the final delivery statuses; remembers the first one seen of each message."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[str, str | None]] = {}
        self.changed: set[str] = set()
        self.samples = 0

    def sample(self, engine: Engine) -> None:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT notification_id, status, carrier_status FROM delivery_status "
                    "WHERE final_status"
                )
            ).all()
        for nid, status, carrier in rows:
            seen = self.first.setdefault(str(nid), (status, carrier))
            if seen != (status, carrier):
                self.changed.add(str(nid))
        self.samples += 1

    def verdicts(self, engine: Engine, messages: dict[str, Any]) -> list[Verdict]:
        """``messages``: the carrier simulator's messages by sid (its ground truth)."""
        self.sample(engine)
        with engine.connect() as conn:
            twice, after = conn.execute(_STRUCTURE).one()
            finals = conn.execute(
                text(
                    "SELECT n.carrier_reference_id, d.carrier_status FROM delivery_status d "
                    "JOIN notifications n ON n.id = d.notification_id WHERE d.final_status"
                )
            ).all()
            conflicts = conn.scalar(
                text(
                    "SELECT count(*) FROM system_events "
                    "WHERE event_type = 'notification_record_conflict'"
                )
            )
        wrong = sum(1 for sid, word in finals if word != _carrier_final(messages.get(sid)))
        return [
            Verdict(
                "no final status ever changed",
                not self.changed and not twice and not after,
                f"{len(self.first)} final statuses watched over {self.samples} samples, "
                f"{len(self.changed)} changed; {twice} messages with two final rows, "
                f"{after} with a row after the final one",
            ),
            Verdict(
                "final status = the carrier's",
                wrong == 0,
                f"{len(finals)} final statuses, {wrong} differ from the carrier's",
            ),
            Verdict("no send outcome lost to a conflict", not conflicts,
                    f"{conflicts} notification_record_conflict events"),  # fmt: skip
        ]


def _carrier_final(message: Any) -> str | None:
    """The final status word the simulator's timeline gives the message (None: none)."""
    if message is None:
        return None
    word = str(message.timeline()[-1][1])
    return word if word in FINAL_WORDS else None


def callback_summary(engine: Engine, records: list[Any]) -> str:
    """One line: callbacks sent and their fate, receipts by outcome, finals by source."""
    fate = Counter(r.outcome for r in records)
    with engine.connect() as conn:
        receipts: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT outcome, count(*) FROM callback_receipts WHERE kind = 'status' "
                    "GROUP BY 1 ORDER BY 1"
                )
            ).all()
        )
        by_callback = conn.scalar(_BY_CALLBACK, {"finals": list(FINAL_WORDS)}) or 0
        finals = conn.scalar(text("SELECT count(*) FROM delivery_status WHERE final_status"))
    return (
        f"callbacks: {len(records)} attempts {dict(sorted(fate.items()))}; "
        f"receipts {receipts}; final statuses by callback {by_callback}, "
        f"by polling {int(finals or 0) - int(by_callback)}"
    )


_AMBIGUOUS = text(
    """
    SELECT count(DISTINCT entity_id) FILTER (WHERE new_values->>'status_reason' = 'AMBIGUOUS'),
           count(*) FILTER (WHERE new_values->>'status_reason' = 'RECONCILED_NOT_FOUND'
                            AND old_values->>'submission_status' = 'Sending'
                            AND new_values->>'submission_status' = 'Queued')
    FROM audit_log WHERE entity_type = 'Notification' AND operation = 'UPDATE'
    """
)
_RECONCILED = text(
    """
    SELECT coalesce(sum((event_data->>'found_by_callback')::int), 0),
           coalesce(sum((event_data->>'found_at_carrier')::int), 0)
    FROM system_events WHERE event_type = 'sms_outbox_reconciled'
    """
)


def ambiguous_summary(engine: Engine) -> str:
    """One line: sends recorded as ambiguous, and how the reconciler settled stuck rows."""
    with engine.connect() as conn:
        ambiguous, requeued = conn.execute(_AMBIGUOUS).one()
        by_receipt, by_lookup = conn.execute(_RECONCILED).one()
        settled = conn.scalar(
            text("SELECT count(*) FROM callback_receipts WHERE outcome = 'settled'")
        )
    return (
        f"notifications with an ambiguous send: {ambiguous}; rows settled by their first "
        f"callback: {settled}; reconciler: settled by a stored callback {by_receipt}, by a "
        f"lookup {by_lookup}, queued again after the requeue delay {requeued}"
    )
