"""EOD extract adapter: a CSV ``account_number,balance,as_of_date[,currency]`` (UTF-8).

The file is read once per process (cached by path, size and mtime: shards of one run
in one worker share it) into a dict keyed by account number. Bad rows are never guessed
at: each becomes a ``Rejected`` (line number and reason) and its account, if it can be
named, gets ``Missing`` with that reason, so the rest of the file still loads.
"""

from __future__ import annotations

import csv
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from app.balances.amounts import AmountError, parse_amount
from app.balances.sources.base import Answer, Balance, Missing, MissingReason, SourceError

REQUIRED = ("account_number", "balance", "as_of_date")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes surrogateescape could not decode
OPTIONAL = ("currency",)


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    account_number: str
    reason: str


@dataclass
class Extract:
    """Every data line is in exactly one of ``rejected``, ``skipped`` (a second copy with
    the same values: the first is used) or, as the line of its account's ``Balance``,
    ``lines``: ``rows == len(rejected) + len(skipped) + len(lines)``."""

    answers: dict[str, Answer]
    rejected: list[Rejected]
    rows: int
    skipped: list[Rejected] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # account -> line of its Balance


_cache: dict[tuple[str, int, int], Extract] = {}
_cache_lock = threading.Lock()


def load_extract(path: str | Path) -> Extract:
    """Parse (or reuse) the extract at ``path``."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise SourceError(f"EOD file {p}: {exc.strerror}") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is None:
            cached = parse_extract(p)
            _cache.clear()  # one extract at a time: they can be a million rows
            _cache[key] = cached
        return cached


def parse_extract(path: Path) -> Extract:
    try:
        # surrogateescape: a byte that is not UTF-8 becomes a lone surrogate in its row
        # (rejected below) instead of a decode error that would refuse the whole file
        # (the decoder reads ahead, so one bad line could even fail the header).
        handle = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    except OSError as exc:
        raise SourceError(f"EOD file {path}: {exc.strerror}") from None
    answers: dict[str, Answer] = {}
    first_line: dict[str, int] = {}
    rejected: list[Rejected] = []
    skipped: list[Rejected] = []
    conflicted: set[str] = set()
    dates: dict[str, date] = {}
    rows = 0
    with handle:
        reader = csv.reader(handle)
        try:
            header = [h.strip().lower() for h in next(reader)]
        except StopIteration:
            raise SourceError(f"EOD file {path} is empty") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"EOD file {path}: unreadable header ({exc})") from None
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise SourceError(f"EOD file {path}: header lacks {', '.join(missing)}")
        i_acc, i_bal, i_date = (header.index(c) for c in REQUIRED)
        i_cur = header.index("currency") if "currency" in header else None
        width = len(header)
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                line += 1
                rows += 1
                rejected.append(Rejected(line, "", f"unreadable row ({type(exc).__name__})"))
                continue
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            rows += 1
            account = row[i_acc].strip() if len(row) > i_acc else ""
            if any(_NOT_UTF8.search(cell) for cell in row):
                account = _NOT_UTF8.sub("?", account)
                _reject(answers, rejected, line, account, "not UTF-8")
                continue
            if len(row) != width:
                _reject(answers, rejected, line, account, f"expected {width} fields")
                continue
            if not account or len(account) > 50:
                rejected.append(Rejected(line, account[:50], "account_number empty or too long"))
                continue
            answer = _row_answer(row, account, i_bal, i_date, i_cur, dates)
            first = first_line.get(account)
            if first is not None:
                # A second copy. The same values: the first copy is used. Different ones:
                # neither is (a balance is never guessed); the account gets no check.
                previous = answers[account]
                if previous == answer:
                    reason = f"duplicate of line {first} (same values; the first copy is used)"
                    skipped.append(Rejected(line, account, reason))
                    continue
                reason = f"conflicting duplicate of line {first}: neither copy is used"
                rejected.append(Rejected(line, account, reason))
                if account not in conflicted and isinstance(previous, Balance):
                    why = f"conflicting duplicate on line {line}: neither copy is used"
                    rejected.append(Rejected(first, account, why))
                conflicted.add(account)
                answers[account] = Missing(account, MissingReason.INVALID_BALANCE, reason)
                continue
            first_line[account] = line
            answers[account] = answer
            if isinstance(answer, Missing):
                rejected.append(Rejected(line, account, answer.detail or answer.reason))
    lines = {a: first_line[a] for a, answer in answers.items() if isinstance(answer, Balance)}
    return Extract(answers, rejected, rows, skipped, lines)


def _reject(
    answers: dict[str, Answer], rejected: list[Rejected], line: int, account: str, reason: str
) -> None:
    rejected.append(Rejected(line, account[:50], reason))
    if account and account not in answers:
        answers[account] = Missing(account, MissingReason.INVALID_BALANCE, reason)


def _row_answer(
    row: list[str],
    account: str,
    i_bal: int,
    i_date: int,
    i_cur: int | None,
    dates: dict[str, date],
) -> Answer:
    if i_cur is not None:
        currency = row[i_cur].strip().upper()
        if currency and currency != "ILS":
            return Missing(account, MissingReason.WRONG_CURRENCY, "currency is not ILS")
    raw_date = row[i_date].strip()
    as_of = dates.get(raw_date)
    if as_of is None:
        try:
            as_of = date.fromisoformat(raw_date)
        except ValueError:
            return Missing(account, MissingReason.WRONG_DATE, "as_of_date is not YYYY-MM-DD")
        dates[raw_date] = as_of
    try:
        amount = parse_amount(row[i_bal])
    except AmountError as exc:
        return Missing(account, MissingReason.INVALID_BALANCE, str(exc))
    return Balance(account, amount, as_of)


class EodFileSource:
    """``BalanceSource`` over an EOD extract file."""

    name = "eod_file"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._extract: Extract | None = None

    @property
    def extract(self) -> Extract:
        if self._extract is None:
            self._extract = load_extract(self.path)
        return self._extract

    def fetch(self, accounts: Sequence[str], as_of: date) -> Mapping[str, Answer]:
        known = self.extract.answers
        return {
            a: known.get(a) or Missing(a, MissingReason.NOT_FOUND, "not in the extract")
            for a in accounts
        }

    def close(self) -> None:
        self._extract = None
