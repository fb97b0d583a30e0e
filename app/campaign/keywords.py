"""The words a customer texts to opt out or back in (Twilio's list, and Hebrew ones).

A message is a keyword only when it is exactly one of these words, trimmed, in any case,
with trailing punctuation and Hebrew vowel points ignored: "stop!" is STOP, "please stop
texting me" is not (as Twilio's own matching: a sentence that mentions a word is no
request). The message text itself is never kept; only the matched word is.

English: Twilio's default opt-out words (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT,
REVOKE, OPTOUT), opt-in words (START, YES, UNSTOP, OPTIN) and help words (HELP, INFO).
Hebrew: the removal word Israeli law asks senders to honour (הסר, and its forms הסרה,
להסרה), "stop" (עצור, הפסק), "cancel" (בטל); back in: "start" (התחל), "subscribe" (הרשם).
docs/campaign.md lists them; add a word here and it is recognised everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
     "הסר", "הסרה", "להסרה", "עצור", "הפסק", "בטל"}
)  # fmt: skip
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP", "OPTIN", "התחל", "הרשם"})
HELP_WORDS = frozenset({"HELP", "INFO"})
KEYWORDS = OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS

_INTENTS = (
    {w: Intent.OPT_OUT for w in OPT_OUT_WORDS}
    | {w: Intent.OPT_IN for w in OPT_IN_WORDS}
    | {w: Intent.HELP for w in HELP_WORDS}
)
_TRAILING = re.compile(r"[\s.!?,;:\"'״׳)(]+$")
_LEADING = re.compile(r"^[\s\"'״׳(]+")
MAX_LENGTH = 20  # the longest keyword is far shorter; a longer text is never one


def normalise(text: str | None) -> str | None:
    """The keyword ``text`` is, or None. Never returns more than the matched word."""
    if not text or len(text) > 4 * MAX_LENGTH:
        return None
    word = _TRAILING.sub("", _LEADING.sub("", text))
    # Hebrew vowel points and cantillation marks (combining, category Mn) are dropped.
    word = "".join(ch for ch in unicodedata.normalize("NFD", word) if not _is_mark(ch))
    word = word.upper()
    return word if word in KEYWORDS else None


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) == "Mn"


def intent(keyword: str | None) -> Intent | None:
    """What a (normalised) keyword asks for."""
    return _INTENTS.get(keyword or "")
