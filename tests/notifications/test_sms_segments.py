"""Segment rules (docs/design.md decision 10), templates and `sms preview`."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli.main import cli
from app.config import Settings, get_settings
from app.months import Month
from app.notifications.segments import GSM7_ALL, Encoding, analyze, analyze_by_units, split_parts
from app.notifications.templates import TemplateError, check_length, get_template


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [
        ("", Encoding.GSM7, 0, 0),
        ("a" * 160, Encoding.GSM7, 160, 1),
        ("a" * 161, Encoding.GSM7, 161, 2),
        ("a" * 306, Encoding.GSM7, 306, 2),
        ("a" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters count 2
        ("{}[]~|^\\" * 10, Encoding.GSM7, 160, 1),
        ("\f", Encoding.GSM7, 2, 1),
        ("א" * 70, Encoding.UCS2, 70, 1),  # Hebrew is UCS-2
        ("א" * 71, Encoding.UCS2, 71, 2),
        ("א" * 134, Encoding.UCS2, 134, 2),
        ("א" * 135, Encoding.UCS2, 135, 3),
        ("😀" * 35, Encoding.UCS2, 70, 1),  # beyond U+FFFF: a surrogate pair counts 2
        ("😀" * 36, Encoding.UCS2, 72, 2),
        ("a" * 159 + "é", Encoding.GSM7, 160, 1),  # é is in the GSM-7 basic set
        ("a" * 159 + "ç", Encoding.UCS2, 160, 3),  # ç is not (only Ç is)
    ],
)
def test_counts(text: str, encoding: Encoding, characters: int, segments: int) -> None:
    info = analyze(text)
    assert (info.encoding, info.characters, info.segments) == (encoding, characters, segments)


# Texts mixing GSM-7 basic, extension, Hebrew and astral characters, at part boundaries.
_MIXED = st.text(
    alphabet=st.sampled_from(sorted(GSM7_ALL) + ["א", "ש", "ç", "😀", "𝄞"]), max_size=420
) | st.text(alphabet="אשçab €{😀", max_size=420)


@settings(max_examples=400, deadline=None)
@given(_MIXED)
@example("a" * 306)  # exact multiples of a part
@example("א" * 134)
@example("a" * 152 + "€")  # an escape that would straddle the first part boundary
def test_fast_path_agrees_with_filling_parts_unit_by_unit(text: str) -> None:
    assert analyze(text) == analyze_by_units(text)


def test_escape_is_never_split_across_parts() -> None:
    # 152 septets, then '€' (2 septets): it does not fit in the first part's 153.
    text = "a" * 152 + "€" + "b" * 10
    parts = split_parts(text)
    assert parts[0] == "a" * 152 and parts[1].startswith("€")
    assert analyze(text).segments == 2
    # A part holds 76 '€' (152 septets): 152 of them (304 septets) plus one 'a' fit two
    # parts, but 153 (306 septets; naive ceil(306 / 153) = 2) need three.
    assert analyze("€" * 152 + "a").segments == 2
    assert analyze("€" * 153).segments == 3


def test_surrogate_pair_is_never_split_across_parts() -> None:
    # 66 units, then an emoji (2 units) would straddle the 67-unit boundary.
    text = "א" * 66 + "😀" + "ב" * 10
    parts = split_parts(text)
    assert parts[0] == "א" * 66 and parts[1].startswith("😀")
    assert analyze(text).segments == 2
    # 66 + 2 + 66 = 134 units: naive ceil(134 / 67) = 2, but the pair that cannot
    # straddle the boundary pushes one unit into a third part.
    assert analyze("א" * 66 + "😀" + "ב" * 65).segments == 2
    assert analyze("א" * 66 + "😀" + "ב" * 66).segments == 3
    assert "".join(split_parts(text)) == text


def test_templates_render_safe_fields_in_each_language() -> None:
    he = get_template("he").render(first_name="דנה", last_name="לוי", month=Month(2026, 10))
    en = get_template("en").render(first_name="Dana", last_name="Levi", month=Month(2026, 3))
    assert "דנה" in he and "אוקטובר" in he and analyze(he).encoding is Encoding.UCS2
    assert "Dana Levi" in en and "March" in en and analyze(en).encoding is Encoding.GSM7
    assert analyze(he).segments <= 3


def test_template_with_unsafe_field_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_TEMPLATE_EN", "Hi {first_name}, your balance is {balance}")
    get_settings.cache_clear()
    try:
        # Refused as soon as the settings load (every process validates them at start).
        with pytest.raises(ValidationError, match="SMS_TEMPLATE_EN: .*balance"):
            get_template("en")
    finally:
        get_settings.cache_clear()


def test_template_longer_than_max_segments_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_TEMPLATE_HE", "שלום {first_name} " + "א" * 200)
    monkeypatch.setenv("SMS_MAX_SEGMENTS", "3")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValidationError, match="SMS_TEMPLATE_HE: .*4 segments"):
            get_template("he")
        template = get_template("en", Settings(_env_file=None, sms_template_he=None))
        assert check_length(template, 1).segments == 1
    finally:
        get_settings.cache_clear()


def test_unknown_template() -> None:
    with pytest.raises(TemplateError, match="unknown template"):
        get_template("fr")


def test_preview_text_json() -> None:
    result = CliRunner().invoke(cli, ["sms", "preview", "שלום 😀", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"encoding": "UCS-2", "characters": 7, "segments": 1}


def test_preview_template_for_an_account(session) -> None:  # type: ignore[no-untyped-def]
    from tests.support.factories import create_customer

    create_customer(session, account_number="ACC-PREVIEW", first_name="Avraham")
    session.commit()
    result = CliRunner().invoke(
        cli,
        ["sms", "preview", "--template", "en", "--account", "ACC-PREVIEW", "--month", "2026-09"]
        + ["--json"],
    )
    assert result.exit_code == 0, result.output
    expected = get_template("en").render(
        first_name="Avraham", last_name="Levi", month=Month(2026, 9)
    )
    assert json.loads(result.output) == analyze(expected).as_dict()


def test_preview_unknown_account_is_a_clean_error(session) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli, ["sms", "preview", "--template", "he", "--account", "NOPE"], standalone_mode=False
    )
    assert "NOPE" in str(result.exception)
