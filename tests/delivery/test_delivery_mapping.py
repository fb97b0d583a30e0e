"""The status-mapping and failure-reason tables, and the backoff schedule."""

from __future__ import annotations

import pytest

from app.delivery.mapping import STATUS_MAP, backoff_schedule, failure_reason, map_report
from app.models.enums import DeliveryState


@pytest.mark.parametrize(
    ("word", "state", "final"),
    [
        ("queued", "Pending", False),
        ("accepted", "Pending", False),
        ("scheduled", "Pending", False),
        ("sending", "Pending", False),
        ("sent", "Pending", False),
        ("delivered", "Delivered", True),
        ("read", "Delivered", True),
        ("undelivered", "Undeliverable", True),
        ("failed", "Failed", True),
        ("canceled", "Failed", True),
    ],
)
def test_every_twilio_status_maps_as_the_issue_says(word: str, state: str, final: bool) -> None:
    mapped = map_report(word, None, None)
    assert (str(mapped.status), mapped.final, mapped.known, mapped.carrier_status) == (
        state,
        final,
        True,
        word,
    )


def test_the_table_has_exactly_the_documented_words() -> None:
    assert len(STATUS_MAP) == 10


def test_unknown_word_is_kept_not_guessed() -> None:
    mapped = map_report("Partially_Delivered", None, None)
    assert mapped.status is DeliveryState.UNKNOWN
    assert (mapped.final, mapped.known, mapped.carrier_status) == (
        False,
        False,
        "partially_delivered",
    )
    assert mapped.failure_reason is not None and "partially_delivered" in mapped.failure_reason


@pytest.mark.parametrize("code", [30003, 30005, 30006, 30007, 30008])
def test_failure_codes_have_sentences(code: int) -> None:
    mapped = map_report("undelivered", code, "carrier text")
    assert mapped.status_code == str(code)
    assert mapped.failure_reason is not None
    assert mapped.failure_reason.startswith(f"{code}: ")
    assert "carrier text" not in mapped.failure_reason  # the table's sentence wins


def test_unlisted_code_keeps_the_carriers_words_and_fits_the_column() -> None:
    assert failure_reason(39999, "Something odd") == "39999: Something odd"
    assert failure_reason(39999, None) == "39999: Carrier error (no description)."
    assert len(failure_reason(39999, "x" * 400) or "") == 255
    assert failure_reason(None, "ignored") is None


def test_delivered_with_a_code_needs_no_failure_sentence() -> None:
    mapped = map_report("delivered", 30008, "late code")
    assert (mapped.status_code, mapped.failure_reason) == ("30008", None)


def test_backoff_schedule() -> None:
    assert backoff_schedule("1,2,5,10,30") == (1, 2, 5, 10, 30)
    with pytest.raises(ValueError):
        backoff_schedule("")
