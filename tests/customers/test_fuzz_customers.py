"""Bad customer files, generated (hypothesis), imported into the real database.

Each example writes a file mixing good rows with broken ones (wrong field counts, bad
encodings, huge fields, duplicates, bad phones and e-mails, control characters, SQL- and
script-looking text, Hebrew and emoji). Properties: the import never crashes; every good
row is stored verbatim, and so is every customer whose only fault is a contact field
(with a warning); every unreadable or unidentifiable row is rejected, every second copy
skipped, with its line and a reason; the counts add up (nothing silently dropped).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from app.customers.importer import import_customers
from app.db.session import session_scope
from tests.conftest import truncate_all

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run: CI stays deterministic
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HEADER = ["account_number", "first_name", "last_name", "email", "phone_number",
          "account_type", "is_active"]  # fmt: skip
# Names as people and attackers write them: stored verbatim, never interpreted.
names = st.one_of(
    st.sampled_from(["דנה", "כהן-לוי", "Robert'); DROP TABLE customers;--", "O'Brien",
                     "<script>alert(1)</script>", "Zoë 🙂", "🦄🦄", "x\\N", "%s%n", "‏שרה‎",
                     "=cmd|' /C calc'!A0", "NULL", "名前", " padded "]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=40),
)  # fmt: skip
kinds = st.sampled_from(["good", "good", "short", "long", "bad_phone", "bad_email",
                         "huge_name", "control", "empty_account", "dup", "bad_bool",
                         "bad_bytes", "blank"])  # fmt: skip


def _good(i: int, first: str, last: str) -> list[str]:
    return [f"F{i:06d}", first, last, f"user{i}@example.co.il", f"+97252{i + 1:07d}", "premium",
            "true"]  # fmt: skip


@FUZZ
@given(st.lists(st.tuples(kinds, names, names), min_size=1, max_size=20))
def test_customer_import_keeps_good_rows_and_reports_the_rest(
    db: Engine, tmp_path_factory: Any, rows: list[tuple[str, str, str]]
) -> None:
    truncate_all(db)
    path: Path = tmp_path_factory.mktemp("customers") / "customers.csv"
    good: dict[str, tuple[str, str]] = {}
    bad_lines = data_lines = dup_lines = 0
    chunks: list[bytes] = []

    def put(values: list[str]) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(values)
        chunks.append(out.getvalue().encode("utf-8"))

    put(HEADER)
    for i, (kind, first, last) in enumerate(rows):
        first_clean, last_clean = first.strip() or "A", last.strip() or "B"
        row = _good(i, first_clean, last_clean)
        data_lines += kind != "blank"
        bad_lines += kind not in ("good", "blank", "dup", "bad_phone", "bad_email")
        if kind in ("good", "bad_phone", "bad_email"):  # a contact field never costs a customer
            good[row[0]] = (first_clean, last_clean)
        elif kind == "short":
            row = row[:3]
        elif kind == "long":
            row = [*row, "extra"]
        elif kind == "bad_phone":
            row[4] = "12"
        elif kind == "bad_email":
            row[3] = "not an email"
        elif kind == "huge_name":
            row[1] = "א" * 5000
        elif kind == "control":
            row[2] = "a\x00b"
        elif kind == "empty_account":
            row[0] = " "
        elif kind == "bad_bool":
            row[6] = "maybe"
        elif kind == "dup":  # a good row, then the same account again (skipped)
            good[row[0]] = (first_clean, last_clean)
            put(row)
            data_lines += 1
            dup_lines += 1
        elif kind == "bad_bytes":
            chunks.append(f"F{i:06d},".encode() + b"\xff\xfeJ,Doe,,+972541234567,,true\n")
            continue
        elif kind == "blank":
            chunks.append(b"\n")
            continue
        put(row)
    path.write_bytes(b"".join(chunks))

    report = import_customers(session_scope, path)

    assert report.rows == data_lines
    assert len(report.rejected) == bad_lines, report.rejected
    assert len(report.skipped) == dup_lines, report.skipped
    assert report.inserted == len(good)
    assert report.accepted + len(report.rejected) + len(report.skipped) == report.rows
    for note in report.rejected + report.skipped + report.warnings:
        assert note.line >= 2 and note.reason
    with db.connect() as conn:
        stored = {
            r.account_number: (r.first_name, r.last_name)
            for r in conn.execute(text("SELECT account_number, first_name, last_name "
                                       "FROM customers"))  # fmt: skip
        }
    assert stored == good  # verbatim: quotes, SQL, Hebrew, emoji and all
