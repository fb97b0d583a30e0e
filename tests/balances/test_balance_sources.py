"""Balance sources: exact amounts, the EOD extract's bad rows, the core-banking adapter."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from app.balances.amounts import AmountError, parse_amount
from app.balances.sources import Balance, Missing, MissingReason, SourceError
from app.balances.sources.core_banking import CoreBankingSource
from app.balances.sources.eod_file import EodFileSource, parse_extract
from app.devtools.simulators.core_banking import CoreBankingThread, balance_for
from app.ratelimit import LocalRateLimiter
from tests.balances.helpers import DAY, write_extract


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("15000", "15000.00"), ("14999.99", "14999.99"), ("-12.5", "-12.50"), (7, "7.00"),
     ("1.230", "1.23")],
)  # fmt: skip
def test_amounts_are_exact(raw: object, expected: str) -> None:
    assert parse_amount(raw) == Decimal(expected)
    assert str(parse_amount(raw)) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [("1.234", "more than two decimals"), ("abc", "not a number"), ("", "empty"),
     ("NaN", "finite"), (1.5, "binary float"), ("1e30", "out of range")],
)  # fmt: skip
def test_unusable_amounts_are_refused_not_rounded(raw: object, reason: str) -> None:
    with pytest.raises(AmountError, match=reason):
        parse_amount(raw)


def test_extract_bad_rows_are_reported_and_good_rows_load(tmp_path: Path) -> None:
    path = write_extract(
        tmp_path / "eod.csv",
        [
            ("A1", "20000.00", DAY, "ILS"),
            ("A2", "15000.001", DAY, "ILS"),  # three decimals
            ("A3", "lots", DAY, "ILS"),  # not a number
            ("A4", "100.00", DAY, "USD"),  # wrong currency
            ("A5", "100.00", "14/10/2026", "ILS"),  # not ISO
            ("A6", "-50.25", DAY, ""),  # empty currency means ILS
            ("A7", "1.00", DAY, "ILS"),
            ("A7", "2.00", DAY, "ILS"),  # conflicting duplicate
            ("", "1.00", DAY, "ILS"),  # no account
        ],
        header="account_number,balance,as_of_date,currency",
    )
    extract = parse_extract(path)
    assert extract.rows == 9
    assert extract.answers["A1"] == Balance("A1", Decimal("20000.00"), DAY)
    assert extract.answers["A6"] == Balance("A6", Decimal("-50.25"), DAY)
    reasons = {r.line: r.reason for r in extract.rejected}
    assert "more than two decimals" in reasons[3]
    assert "not a number" in reasons[4]
    assert "not ILS" in reasons[5]
    assert "YYYY-MM-DD" in reasons[6]
    assert "conflicting duplicate of line 8" in reasons[9]
    assert "account_number empty" in reasons[10]
    for account, reason in [("A2", MissingReason.INVALID_BALANCE), ("A4", "wrong_currency"),
                            ("A7", MissingReason.INVALID_BALANCE)]:  # fmt: skip
        answer = extract.answers[account]
        assert isinstance(answer, Missing) and answer.reason == reason
    answers = EodFileSource(path).fetch(["A1", "ZZ"], DAY)
    assert answers["ZZ"] == Missing("ZZ", MissingReason.NOT_FOUND, "not in the extract")


def test_extract_without_required_columns_is_refused(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "eod.csv", [("A1", "1.00")], header="account_number,balance")
    with pytest.raises(SourceError, match="header lacks as_of_date"):
        parse_extract(path)


def test_core_banking_answers_each_account(core_banking: CoreBankingThread) -> None:
    core_banking.config.missing_accounts = ["GONE1"]
    source = CoreBankingSource(core_banking.base_url, batch_size=2)
    answers = source.fetch(["A1", "GONE1", "A2", "A3"], DAY)
    assert answers["A1"] == Balance("A1", balance_for(7, "A1", DAY), DAY)
    assert answers["A3"] == Balance("A3", balance_for(7, "A3", DAY), DAY)
    assert answers["GONE1"] == Missing("GONE1", MissingReason.NOT_FOUND)
    assert core_banking.simulator.stats["200"] == 2  # batched: two requests of two
    source.close()


def test_core_banking_retries_5xx_and_429_then_succeeds(core_banking: CoreBankingThread) -> None:
    core_banking.config.error_rate = 0.3
    core_banking.config.rate_429 = 0.3
    source = CoreBankingSource(
        core_banking.base_url, batch_size=1, max_retries=10, backoff_factor=0.001
    )
    accounts = [f"R{i}" for i in range(30)]
    answers = source.fetch(accounts, DAY)
    assert all(isinstance(answers[a], Balance) for a in accounts)
    stats = core_banking.simulator.stats
    assert stats["200"] == 30 and stats["500"] + stats["429"] > 0
    source.close()


def test_core_banking_outage_is_a_source_error(core_banking: CoreBankingThread) -> None:
    core_banking.config.outage = True
    source = CoreBankingSource(core_banking.base_url, max_retries=1, backoff_factor=0.001)
    with pytest.raises(SourceError, match="503"):
        source.fetch(["A1"], DAY)


def test_core_banking_token_and_timeout(core_banking: CoreBankingThread) -> None:
    core_banking.config.token = "s3cret"
    with pytest.raises(SourceError, match="HTTP 401"):
        CoreBankingSource(core_banking.base_url).fetch(["A1"], DAY)
    ok = CoreBankingSource(core_banking.base_url, token="s3cret").fetch(["A1"], DAY)
    assert isinstance(ok["A1"], Balance)
    core_banking.config.latency = 1.0
    slow = CoreBankingSource(core_banking.base_url, token="s3cret", timeout=0.2, max_retries=0)
    with pytest.raises(SourceError, match="unreachable"):
        slow.fetch(["A1"], DAY)


def test_local_limiter_paces_requests() -> None:
    limiter = LocalRateLimiter(5, 1.0)
    granted = sum(limiter.try_acquire() == 0.0 for _ in range(20))
    assert granted == 5  # the rest of this second is over the limit
    assert limiter.try_acquire() > 0.9  # and the limiter says how long to wait


def test_simulator_balances_are_deterministic() -> None:
    assert balance_for(1, "ACC1", date(2026, 1, 1)) == balance_for(1, "ACC1", date(2026, 1, 1))
    values = {balance_for(1, f"ACC{i}", DAY) for i in range(200)}
    assert len(values) > 150
    assert any(v >= Decimal("15000") for v in values) and any(v < 0 for v in values)
    assert all(v == v.quantize(Decimal("0.01")) for v in values)
