"""The list API's query: filters, Twilio's date formats and its page tokens.

Twilio pages by cursor: ``next_page_uri`` carries ``PageToken=PA<sid>`` (the page after
the message ``<sid>``) and ``previous_page_uri`` ``PageToken=PB<sid>`` (the page before
it). ``DateSent`` filters accept ``YYYY-MM-DD``, ISO 8601, RFC 2822
(``Wed, 19 Jun 2019 22:04:00 -0000``) and ``06/11/2019 22:05:25 MST`` (the formats of
Twilio's own examples); a date compares by day, a time by the second.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

from app.devtools.simulators.carrier.model import SimMessage

FILTERS = (("DateSent", "="), ("DateSent<", "<"), ("DateSent>", ">"))
_US = re.compile(r"(\d{2})/(\d{2})/(\d{4}) (\d{2}:\d{2}:\d{2})(?: (\S+))?")
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


class BadQuery(ValueError):
    """A query parameter Twilio would refuse (HTTP 400, code 20001)."""


def parse_date(value: str) -> datetime | date:
    """A DateSent bound: a date, or an aware UTC datetime."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            return date.fromisoformat(v)
        us = _US.fullmatch(v)
        if us:  # MM/DD/YYYY HH:MM:SS ZONE -> RFC 2822 without a weekday
            month, day, year, clock, zone = us.groups()
            v = f"{day} {_MONTHS[int(month) - 1]} {year} {clock} {zone or '+0000'}"
            parsed = parsedate_to_datetime(v)
        elif re.match(r"^[A-Za-z]{3},|^\d{1,2} [A-Za-z]{3} ", v):
            parsed = parsedate_to_datetime(v)
        else:
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except (ValueError, TypeError, IndexError):
        raise BadQuery(f"DateSent: unreadable date {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Twilio's dates are GMT
    return parsed.astimezone(UTC)


def matches_sent(sent: float | None, op: str, bound: datetime | date) -> bool:
    if sent is None:
        return False  # as at Twilio: a message not yet sent has no date_sent
    at = datetime.fromtimestamp(int(sent), UTC)
    if isinstance(bound, datetime):
        if op == "<":
            return at <= bound
        if op == ">":
            return at >= bound
        return at.date() == bound.date()
    day = at.date()
    return day <= bound if op == "<" else day >= bound if op == ">" else day == bound


@dataclass(frozen=True)
class ListQuery:
    to: str | None
    from_: str | None
    bounds: list[tuple[str, datetime | date]]
    page_size: int
    page: int
    token: str | None  # "PA<sid>" / "PB<sid>"

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> ListQuery:
        try:
            page_size = int(q.get("PageSize", "50"))
            page = int(q.get("Page", "0"))
        except ValueError:
            raise BadQuery("PageSize and Page must be integers") from None
        if page_size < 1 or page < 0:
            raise BadQuery("PageSize must be 1 or more, Page 0 or more")
        token = q.get("PageToken") or None
        if token is not None and not re.fullmatch(r"P[AB](SM|MM)[0-9a-fA-F]{32}", token):
            raise BadQuery("PageToken: not a token this API issued")
        bounds = [(op, parse_date(q[key])) for key, op in FILTERS if key in q]
        return cls(q.get("To"), q.get("From"), bounds, min(page_size, 1000), page, token)

    def matches(self, m: SimMessage, now: float) -> bool:
        if not m.listed(now):
            return False
        if self.to is not None and m.to != self.to:
            return False
        if self.from_ is not None and (m.from_ or m.service_sender) != self.from_:
            return False
        if not self.bounds:
            return True
        sent = m.state(now)[1]
        return all(matches_sent(sent, op, bound) for op, bound in self.bounds)


@dataclass
class Page:
    messages: list[SimMessage]
    next_sid: str | None  # the PA token's sid, if there is a next page
    previous_sid: str | None  # the PB token's sid, if there is a previous page


def select_page(
    query: ListQuery,
    indices: Sequence[int],
    at: Callable[[int], SimMessage],
    position_of: Callable[[str], int | None],
    now: float,
) -> Page:
    """One page of ``indices`` (ascending creation order), newest first, from the token.

    ``at`` gives the message of a creation index, ``position_of`` a sid's index.
    """
    size, token = query.page_size, query.token
    start = len(indices)  # the newest candidate is indices[start - 1]
    backwards = False
    if token is not None:
        index = position_of(token[2:])
        if index is None:
            raise BadQuery("PageToken: unknown message")
        pos = bisect_left(indices, index)
        backwards = token[1] == "B"
        start = pos + 1 if backwards else pos
        if pos < len(indices) and indices[pos] != index:
            start = pos  # the token's message is not in this sequence: resume beside it
    chunk: list[SimMessage] = []
    more = False
    if backwards:  # the `size` matches just newer than the token, shown newest first
        pos = start
        while pos < len(indices):
            m = at(indices[pos])
            if query.matches(m, now):
                if len(chunk) == size:
                    more = True
                    break
                chunk.append(m)
            pos += 1
        chunk.reverse()
        return Page(chunk, chunk[-1].sid if chunk else None, chunk[0].sid if more else None)
    pos = start - 1
    while pos >= 0:
        m = at(indices[pos])
        if query.matches(m, now):
            if len(chunk) == size:
                more = True
                break
            chunk.append(m)
        pos -= 1
    previous = chunk[0].sid if chunk and (token is not None or query.page > 0) else None
    return Page(chunk, chunk[-1].sid if more else None, previous)


def page_uri(base: str, q: Mapping[str, str], size: int, page: int, token: str | None) -> str:
    """A page's URI as Twilio writes it: the filters, PageSize, Page, then PageToken."""
    keep = {k: v for k, v in q.items() if k not in {"Page", "PageToken", "PageSize"}}
    query: dict[str, str | int] = {**keep, "PageSize": size, "Page": page}
    if token is not None:
        query["PageToken"] = token
    return f"{base}?{urlencode(query)}"
