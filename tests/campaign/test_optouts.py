"""Opt-outs: a 21610 answer and an inbound STOP (English or Hebrew) each opt the customer
out (audited, no message text kept); the next month skips them with their own reason, the
month report counts them, and START brings them back."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.campaign.keywords import Intent, intent, normalise
from app.db.session import session_scope
from app.devtools.simulators.carrier import SimulatorThread
from app.models import AuditLog, CallbackReceipt
from app.months import Month
from app.notifications.sending import Sender
from app.qualification.reports import month_report
from tests.campaign.conftest import DEC, NOV, OCT, choices, customers, outbox_of, prepare, qualify
from tests.support.callbacks import ReceiverThread, post_signed
from tests.support.carrier import client_for

UNSUBSCRIBED = "+15005550004"  # the carrier simulator answers 21610 for this number


def _send_all(sim: SimulatorThread, month: object) -> None:
    sender = Sender(client_for(sim))
    for batch in prepare(month).batches:  # type: ignore[arg-type]
        assert sender.send_batch(session_scope, batch).defer_seconds is None


def _text_us(receiver: ReceiverThread, phone: str, body: str) -> str:
    sid = "SM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "AccountSid": "AC" + "1" * 32, "From": phone,
              "To": "+15005550006", "Body": body, "NumMedia": "0"}  # fmt: skip
    answer = post_signed(receiver.base_url, "/v1/callbacks/inbound", params)
    assert answer.status_code == 200, answer.text
    return sid


def _audited(session: Session) -> list[AuditLog]:
    session.expire_all()
    return list(
        session.scalars(
            select(AuditLog)
            .where(AuditLog.entity_type == "CustomerOptOut")
            .order_by(AuditLog.timestamp)
        )
    )


@pytest.mark.parametrize(
    ("body", "word", "wanted"),
    [
        (" stop ", "STOP", Intent.OPT_OUT),
        ("Unsubscribe!", "UNSUBSCRIBE", Intent.OPT_OUT),
        ("quit", "QUIT", Intent.OPT_OUT),
        ("הסר", "הסר", Intent.OPT_OUT),
        ("הָסֵר.", "הסר", Intent.OPT_OUT),  # vowel points and a full stop
        ("להסרה", "להסרה", Intent.OPT_OUT),
        ("עצור", "עצור", Intent.OPT_OUT),
        ("START", "START", Intent.OPT_IN),
        ("unstop", "UNSTOP", Intent.OPT_IN),
        ("התחל", "התחל", Intent.OPT_IN),
        ("help", "HELP", Intent.HELP),
        ("please stop texting me", None, None),
        ("הסר אותי מהרשימה", None, None),
        ("", None, None),
    ],
)
def test_keywords(body: str, word: str | None, wanted: Intent | None) -> None:
    assert normalise(body) == word
    assert intent(normalise(body)) == wanted


def test_a_21610_answer_opts_the_customer_out_and_the_next_month_skips_them(
    session: Session, sms_env: SimulatorThread
) -> None:
    refused, texted = customers(session, UNSUBSCRIBED, "+972501110001", months=(OCT, NOV))
    _send_all(sms_env, OCT)
    october = outbox_of(session, OCT)
    assert (october[refused.id].submission_status, october[refused.id].error_code) == (
        "Failed", "21610",
    )  # fmt: skip
    assert october[texted.id].submission_status == "Submitted"
    [choice] = choices(session)
    assert (choice.customer_id, choice.opted_out, choice.source) == (refused.id, True,
                                                                     "carrier_21610")  # fmt: skip
    assert choice.notification_id == october[refused.id].id and choice.keyword is None
    [audit] = _audited(session)
    assert audit.operation == "INSERT" and audit.entity_id == choice.id
    assert audit.new_values["customer_id"] == str(refused.id)
    assert UNSUBSCRIBED not in str(audit.new_values)

    result = prepare(NOV)
    assert (result.queued, result.skipped) == (1, {"OPTED_OUT": 1})
    november = outbox_of(session, NOV)
    assert (november[refused.id].submission_status, november[refused.id].status_reason) == (
        "Skipped", "OPTED_OUT",
    )  # fmt: skip
    assert november[texted.id].submission_status == "Queued"

    with session_scope() as s:
        oct_report, nov_report = month_report(s, Month.of(OCT)), month_report(s, Month.of(NOV))
    assert (oct_report["opted_out_by_carrier"], oct_report["skipped_opted_out"]) == (1, 0)
    assert (nov_report["opted_out_by_carrier"], nov_report["skipped_opted_out"]) == (0, 1)


def test_inbound_stop_opts_out_start_opts_back_in(
    session: Session, receiver: ReceiverThread
) -> None:
    stopper, other = customers(session, "+972521112233", "+972521112244", months=(OCT,))
    stop_sid = _text_us(receiver, "+972521112233", " Stop ")
    _text_us(receiver, "+972521112233", "STOP")  # twice: still one opt-out

    [choice] = choices(session)
    assert (choice.customer_id, choice.opted_out, choice.source) == (stopper.id, True,
                                                                     "inbound_keyword")  # fmt: skip
    assert (choice.keyword, choice.message_sid) == ("STOP", stop_sid)
    receipts = session.scalars(select(CallbackReceipt).order_by(CallbackReceipt.received_at)).all()
    assert [r.outcome for r in receipts] == ["opted_out", "already_opted_out"]
    [audit] = _audited(session)
    assert audit.user_id == "callbacks" and audit.new_values["keyword"] == "STOP"
    assert "+972521112233" not in str(audit.new_values) and "Body" not in str(audit.new_values)

    qualify(session, [stopper, other], NOV)
    assert prepare(NOV).skipped == {"OPTED_OUT": 1}
    assert outbox_of(session, NOV)[stopper.id].status_reason == "OPTED_OUT"

    _text_us(receiver, "+972521112233", "START")
    assert [(c.opted_out, c.keyword) for c in choices(session)] == [(True, "STOP"),
                                                                    (False, "START")]  # fmt: skip
    assert [a.new_values["opted_out"] for a in _audited(session)] == [True, False]
    qualify(session, [stopper, other], DEC)
    result = prepare(DEC)
    assert (result.queued, result.skipped) == (2, {})
    assert outbox_of(session, DEC)[stopper.id].submission_status == "Queued"


def test_hebrew_keywords_and_unknown_senders(session: Session, receiver: ReceiverThread) -> None:
    [customer] = customers(session, "+972531234567")
    _text_us(receiver, "+972531234567", "הסר")
    _text_us(receiver, "+972539999999", "STOP")  # nobody we know: stored, nothing to opt out
    _text_us(receiver, "+972531234567", "מה זה?")  # not a keyword: nothing happens
    _text_us(receiver, "+972531234567", "התחל")
    assert [(c.customer_id, c.opted_out, c.keyword) for c in choices(session)] == [
        (customer.id, True, "הסר"), (customer.id, False, "התחל"),
    ]  # fmt: skip
    outcomes = [r.outcome for r in session.scalars(
        select(CallbackReceipt).order_by(CallbackReceipt.received_at))]  # fmt: skip
    assert outcomes == ["opted_out", "unknown_sender", "recorded", "opted_in"]


def test_a_stop_during_the_wave_skips_the_queued_message(
    session: Session, sms_env: SimulatorThread, receiver: ReceiverThread
) -> None:
    stopper, texted = customers(session, "+972541112233", "+972541112244")
    [batch] = prepare(OCT).batches
    _text_us(receiver, "+972541112233", "stop")  # after the prepare, before the send
    Sender(client_for(sms_env)).send_batch(session_scope, batch)
    october = outbox_of(session, OCT)
    assert (october[stopper.id].submission_status, october[stopper.id].status_reason) == (
        "Skipped", "OPTED_OUT",
    )  # fmt: skip
    assert october[texted.id].submission_status == "Submitted"
    assert sms_env.state.per_recipient() == {"+972541112244": 1}


def test_the_opt_out_history_is_append_only(session: Session, receiver: ReceiverThread) -> None:
    customers(session, "+972551112233")
    _text_us(receiver, "+972551112233", "STOP")
    for statement in ("UPDATE customer_opt_outs SET opted_out = false",
                      "DELETE FROM customer_opt_outs"):  # fmt: skip
        with pytest.raises(Exception, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert len(choices(session)) == 1
