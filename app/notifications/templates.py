"""Message templates: one per language, with safe fields only.

A template may use ``{first_name}``, ``{last_name}`` and ``{month_name}`` (the month's
name in the template's language) and nothing else: no balance, no account number, no
phone number, so a message body never carries more personal data than a greeting.
Templates can be overridden by settings (``SMS_TEMPLATE_HE`` / ``SMS_TEMPLATE_EN``).
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from app.config import Settings, get_settings
from app.months import Month
from app.notifications.segments import SegmentInfo, analyze

SAFE_FIELDS = frozenset({"first_name", "last_name", "month_name"})

MONTH_NAMES: dict[str, tuple[str, ...]] = {
    "he": (
        "ינואר",
        "פברואר",
        "מרץ",
        "אפריל",
        "מאי",
        "יוני",
        "יולי",
        "אוגוסט",
        "ספטמבר",
        "אוקטובר",
        "נובמבר",
        "דצמבר",
    ),  # fmt: skip
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),  # fmt: skip
}

DEFAULT_TEMPLATES: dict[str, str] = {
    "he": (
        "שלום {first_name}, תודה שהיית לקוח/ה פרימיום בחודש {month_name}: "
        "היתרה בחשבונך נשמרה מעל סף הפרימיום בכל יום בחודש. בנק פרימיום"
    ),
    "en": (
        "Dear {first_name} {last_name}, thank you for being a Premium customer in "
        "{month_name}: your balance stayed above the Premium threshold every day."
    ),
}


class TemplateError(ValueError):
    """The template is unknown, uses a field that is not allowed, or is too long."""


@dataclass(frozen=True)
class Template:
    name: str  # the language code
    text: str

    def fields(self) -> set[str]:
        try:
            return {f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None}
        except ValueError as exc:
            raise TemplateError(f"template {self.name!r}: {exc}") from None

    def render(self, *, first_name: str, last_name: str, month: Month) -> str:
        return self.text.format(
            first_name=_clean(first_name),
            last_name=_clean(last_name),
            month_name=MONTH_NAMES[self.name][month.month - 1],
        )


def _clean(value: str) -> str:
    # A name is a single line: newlines or tabs from a source system would make the
    # message look broken (and a CR is a GSM-7 character that costs a septet).
    return " ".join(value.split())


def get_template(name: str | None = None, settings: Settings | None = None) -> Template:
    """The configured template for ``name`` (default: SMS_TEMPLATE_LANGUAGE), validated."""
    settings = settings or get_settings()
    name = (name or settings.sms_template_language).lower()
    if name not in MONTH_NAMES:
        raise TemplateError(f"unknown template {name!r} (known: {', '.join(sorted(MONTH_NAMES))})")
    override = getattr(settings, f"sms_template_{name}", None)
    template = Template(name, override or DEFAULT_TEMPLATES[name])
    bad = template.fields() - SAFE_FIELDS
    if bad:
        raise TemplateError(
            f"template {name!r} uses fields that are not allowed: {', '.join(sorted(bad))} "
            f"(allowed: {', '.join(sorted(SAFE_FIELDS))})"
        )
    check_length(template, settings.sms_max_segments)
    return template


def check_length(template: Template, max_segments: int) -> SegmentInfo:
    """Refuse a template that is too long even with the shortest names (before any send).

    Rendering with one-letter names and the longest month name of the language gives
    the template's own floor; a customer's long name can still push a single message
    over, which the outbox then skips with a reason.
    """
    longest_month = max(MONTH_NAMES[template.name], key=lambda m: analyze(m).characters)
    sample = template.text.format(first_name="A", last_name="B", month_name=longest_month)
    info = analyze(sample)
    if info.segments > max_segments:
        raise TemplateError(
            f"template {template.name!r} needs {info.segments} segments even with the "
            f"shortest names; the limit is {max_segments} (SMS_MAX_SEGMENTS)"
        )
    return info
