"""Balance sources behind one interface, and the default one from settings."""

from __future__ import annotations

from app.balances.sources.base import (
    Answer,
    Balance,
    BalanceSource,
    Missing,
    MissingReason,
    SourceError,
    SourceNotConfigured,
)

__all__ = [
    "Answer",
    "Balance",
    "BalanceSource",
    "Missing",
    "MissingReason",
    "SourceError",
    "SourceNotConfigured",
    "default_source",
    "source_from_spec",
]


def source_from_spec(spec: str | None) -> BalanceSource:
    """``http`` (core banking, from settings) or ``file:PATH`` (an EOD extract)."""
    from app.config import get_settings

    if spec is None or spec == "http":
        from app.balances.sources.core_banking import CoreBankingSource

        return CoreBankingSource.from_settings(get_settings())
    if spec.startswith("file:"):
        from app.balances.sources.eod_file import EodFileSource

        return EodFileSource(spec[len("file:") :])
    raise SourceError(f"unknown balance source {spec!r}: use 'http' or 'file:PATH'")


def default_source() -> BalanceSource:
    """The source named by BALANCE_SOURCE (default: the core-banking API)."""
    from app.config import get_settings

    return source_from_spec(get_settings().balance_source)
