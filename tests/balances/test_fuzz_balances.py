"""Bad balance input, generated (hypothesis): amounts, EOD extracts, core-banking answers.

Properties: nothing raises but the documented errors; a valid row or entry is kept
exactly; every invalid one is reported with a reason; nothing is silently dropped.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.balances.amounts import MAX_ABS, AmountError, parse_amount
from app.balances.sources.base import Balance, Missing, MissingReason
from app.balances.sources.core_banking import parse_results
from app.balances.sources.eod_file import parse_extract

DAY = date(2026, 10, 5)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,  # the same examples every run: CI stays deterministic
    suppress_health_check=[HealthCheck.too_slow],
)

# Text that looks like numbers in the ways real extracts go wrong.
numberish = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.from_regex(r"\A[ +-]?\d{0,30}(\.\d{0,6})?([eE][+-]?\d{1,4})?\s?\Z"),
    st.sampled_from(["NaN", "-0", "-0.00", "1e2", "1E-2", "0.001", "15,000.00", "1_000", "∞",
                     "١٢٣", "0x10", "", " ", "12.5.3", "--1", "1e999999", "1e-999999"]),
    st.text(max_size=40),
)  # fmt: skip
good_amounts = st.decimals(
    min_value=-MAX_ABS, max_value=MAX_ABS, places=2, allow_nan=False, allow_infinity=False
)


@FUZZ
@given(st.one_of(numberish, st.integers(), st.floats(), st.none(), st.booleans(), st.decimals()))
@example("1" * 27 + ".001")  # more digits than Decimal's precision: quantize() raised
@example("1" * 16 + ".001")
def test_parse_amount_returns_two_places_or_says_why(raw: Any) -> None:
    try:
        value = parse_amount(raw)
    except AmountError as exc:
        assert str(exc)  # a reason, and never the value itself (it may be a balance)
        return
    assert value.is_finite() and abs(value) <= MAX_ABS
    assert value == value.quantize(Decimal("0.01"))
    assert not isinstance(raw, float | bool)


@FUZZ
@given(good_amounts)
def test_every_two_place_decimal_is_kept_exactly(amount: Decimal) -> None:
    assert parse_amount(str(amount)) == amount
    assert parse_amount(amount) == amount


bad_cell = st.one_of(
    numberish,
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=300),
    st.integers(min_value=1000, max_value=20000).map(lambda n: "9" * n),  # huge field
)
row_kind = st.sampled_from(["good", "bad_amount", "bad_date", "future", "currency", "width",
                            "duplicate", "blank", "garbage_bytes"])  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(row_kind, good_amounts, bad_cell), min_size=1, max_size=25))
def test_eod_extract_keeps_valid_rows_and_reports_the_rest(
    tmp_path_factory: Any, rows: list[tuple[str, Decimal, str]]
) -> None:
    path: Path = tmp_path_factory.mktemp("eod") / "extract.csv"
    expected: dict[str, Decimal] = {}
    data_lines = 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["account_number", "balance", "as_of_date", "currency"])
    raw_lines: list[bytes] = [out.getvalue().encode()]
    for i, (kind, amount, junk) in enumerate(rows):
        # A bare CR is a line break to any CSV reader (the writer does not quote it with
        # a "\n" terminator): it would make two lines, which the count below would miss.
        junk = junk.replace("\r", "")
        rows[i] = (kind, amount, junk)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        account = f"A{i:05d}"
        if kind == "good":
            writer.writerow([account, str(amount), DAY.isoformat(), "ILS"])
            expected[account] = amount
        elif kind == "bad_amount":
            writer.writerow([account, junk, DAY.isoformat(), "ILS"])
        elif kind == "bad_date":
            writer.writerow([account, str(amount), junk[:30] or "2026-13-01", "ILS"])
        elif kind == "future":
            writer.writerow([account, str(amount), "2999-01-01", "ILS"])
        elif kind == "currency":
            writer.writerow([account, str(amount), DAY.isoformat(), "USD"])
        elif kind == "width":
            writer.writerow([account, str(amount)])
        elif kind == "duplicate":  # the same account twice, with different balances
            writer.writerow([account, str(amount), DAY.isoformat(), "ILS"])
            writer.writerow([account, str(amount + 1), DAY.isoformat(), "ILS"])
            data_lines += 1
        elif kind == "blank":
            out.write("\n")
            data_lines -= 1
        else:  # bytes that are not UTF-8 inside an otherwise good row
            raw_lines.append(f"{account},".encode() + b"\xff\xfe1" + b",2026-10-05,ILS\n")
            data_lines += 1
            continue
        data_lines += 1
        raw_lines.append(out.getvalue().encode("utf-8"))
    path.write_bytes(b"".join(raw_lines))

    extract = parse_extract(path)

    assert extract.rows == data_lines  # every non-blank line was read, none lost
    reasons: dict[str, list[str]] = {}
    for r in extract.rejected:
        assert r.reason and r.line >= 2
        reasons.setdefault(r.account_number, []).append(r.reason)
    for i, (kind, amount, junk) in enumerate(rows):
        account = f"A{i:05d}"
        answer = extract.answers.get(account)
        if kind == "good":
            assert answer == Balance(account, amount, DAY)  # kept exactly
        elif kind == "future":  # parsed as given; the check refuses a date it was not asked
            assert answer == Balance(account, amount, date(2999, 1, 1))
        elif kind == "blank":
            assert answer is None
        elif kind in ("bad_amount", "bad_date") and _usable(kind, amount, junk) is not None:
            usable = _usable(kind, amount, junk)
            assert usable is not None and answer == Balance(account, usable.balance, usable.as_of)
        else:  # reported on its line, with a reason, and answered Missing (never a guess)
            assert isinstance(answer, Missing) and answer.reason is not MissingReason.NOT_FOUND
            assert reasons.get(account), (kind, extract.rejected)


def _usable(kind: str, amount: Decimal, junk: str) -> Balance | None:
    """What a fuzzed cell means if it happens to be valid (a number, an ISO date)."""
    try:
        if kind == "bad_amount":
            return Balance("", parse_amount(junk), DAY)
        return Balance("", amount, date.fromisoformat((junk[:30] or "x").strip()))
    except (AmountError, ValueError):
        return None


entry = st.one_of(
    st.fixed_dictionaries(
        {"account_number": st.sampled_from(["A1", "A2", "A3", "ZZ"]),
         "status": st.sampled_from(["ok", "not_found", "OK", "", None, 7, "closed"]),
         "balance": st.one_of(numberish, st.integers(), st.floats(), st.none(),
                              st.lists(st.integers(), max_size=2)),
         "currency": st.sampled_from(["ILS", "USD", None, 5]),
         "as_of_date": st.one_of(st.just(DAY.isoformat()), st.text(max_size=12), st.none())},
    ),  # fmt: skip
    st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


@FUZZ
@given(st.one_of(st.lists(entry, max_size=8), st.none(), st.text(), st.integers(),
                 st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)))  # fmt: skip
def test_core_banking_results_answer_every_asked_account(results: Any) -> None:
    batch = ["A1", "A2", "A3"]
    answers = parse_results(results, batch, DAY)
    assert set(answers) == set(batch)  # one answer per asked account, none invented
    for account, answer in answers.items():
        assert answer.account_number == account
        if isinstance(answer, Missing):
            assert isinstance(answer.reason, MissingReason)
        else:
            assert answer.balance == answer.balance.quantize(Decimal("0.01"))


@FUZZ
@given(good_amounts)
def test_a_well_formed_core_banking_entry_is_kept_exactly(amount: Decimal) -> None:
    results = [{"account_number": "A1", "status": "ok", "balance": str(amount),
                "currency": "ILS", "as_of_date": DAY.isoformat()},
               {"account_number": "A2", "status": "ok", "balance": 12.5}]  # fmt: skip
    answers = parse_results(results, ["A1", "A2"], DAY)
    assert answers["A1"] == Balance("A1", amount, DAY)
    assert isinstance(answers["A2"], Missing)  # a binary float is refused, with a reason
    assert answers["A2"].reason is MissingReason.INVALID_BALANCE
