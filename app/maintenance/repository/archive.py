"""SQL of ``archive query``: one auditor's statement in DuckDB over registered datasets.

The datasets (one per cold table) are registered as views; then DuckDB's external
access is switched off and its configuration locked, so the statement reads nothing
else. The statement is the auditor's own (checked to be one SELECT by the caller).
"""

from __future__ import annotations

from typing import Any

import duckdb


def statement_kinds(sql: str) -> list[str]:
    """The kind of each statement in ``sql`` (SELECT, INSERT, COPY, ...)."""
    return [s.type.name for s in duckdb.extract_statements(sql)]


def run_readonly(datasets: dict[str, Any], sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of ``sql`` over ``datasets`` registered under their names."""
    con = duckdb.connect(":memory:")
    try:
        for name, dataset in datasets.items():
            con.register(name, dataset)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()
    finally:
        con.close()
