"""The circuit breaker: pause sending by itself when the carrier refuses most messages.

Each sender process keeps the carrier's answers of the last SMS_BREAKER_WINDOW_SECONDS
(in memory: a carrier incident shows in every process's own sample, and the breaker
needs no shared state to decide). It trips when a window of at least
SMS_BREAKER_MIN_ATTEMPTS answers holds at least SMS_BREAKER_FAILURE_RATE permanent
refusals, or SMS_BREAKER_ERROR_RATE errors of any kind (when set). Tripping pauses the
kill switch in the database (so every worker stops), raises a system event and counts
``pn_sms_breaker_trips_total`` (alert SmsSendingPausedByBreaker); only an operator
resumes.

What counts: a create the carrier answered. 21610 (the recipient opted out) is the
customer's choice, recorded as an opt-out, not a carrier fault; a row given back to the
queue unattempted (pause, window, limiter) is no answer at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

OPT_OUT_CODE = "21610"


@dataclass(frozen=True)
class Answer:
    """One carrier answer to a create, as the breaker sees it."""

    permanent: bool  # refused for good
    error: bool  # any error (permanent, transient, ambiguous)
    code: str | None


@dataclass(frozen=True)
class Trip:
    """Why the breaker tripped (the figures of the window)."""

    answers: int
    permanent: int
    errors: int
    window_seconds: float
    codes: dict[str, int]

    @property
    def permanent_rate(self) -> float:
        return self.permanent / self.answers

    @property
    def error_rate(self) -> float:
        return self.errors / self.answers

    def describe(self) -> str:
        return (
            f"{self.permanent} permanent refusals and {self.errors} errors in "
            f"{self.answers} carrier answers within {self.window_seconds:.0f} s"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "answers": self.answers,
            "permanent": self.permanent,
            "errors": self.errors,
            "permanent_rate": round(self.permanent_rate, 3),
            "error_rate": round(self.error_rate, 3),
            "window_seconds": self.window_seconds,
            "codes": self.codes,
        }


class CircuitBreaker:
    """A sliding window of carrier answers (thread-safe: one per process)."""

    def __init__(
        self,
        *,
        window_seconds: float,
        min_answers: int,
        failure_rate: float,
        error_rate: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window = window_seconds
        self.min_answers = min_answers
        self.failure_rate = failure_rate
        self.error_rate = error_rate
        self.clock = clock
        self._answers: deque[tuple[float, Answer]] = deque()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.min_answers > 0

    def reset(self) -> None:
        """Forget the window (after a trip, and when sending resumes)."""
        with self._lock:
            self._answers.clear()

    def observe(self, answers: Iterable[Answer]) -> Trip | None:
        """Add answers; a ``Trip`` if the window now passes a threshold (then it is reset)."""
        if not self.enabled:
            return None
        now = self.clock()
        with self._lock:
            for answer in answers:
                if answer.code != OPT_OUT_CODE:
                    self._answers.append((now, answer))
            while self._answers and self._answers[0][0] < now - self.window:
                self._answers.popleft()
            trip = self._judge()
            if trip is not None:
                self._answers.clear()
            return trip

    def _judge(self) -> Trip | None:
        total = len(self._answers)
        if total < self.min_answers:
            return None
        permanent = sum(1 for _, a in self._answers if a.permanent)
        errors = sum(1 for _, a in self._answers if a.error)
        over_failure = permanent >= self.failure_rate * total
        over_error = self.error_rate > 0 and errors >= self.error_rate * total
        if not (over_failure or over_error):
            return None
        codes: dict[str, int] = {}
        for _, a in self._answers:
            if a.error:
                codes[a.code or "none"] = codes.get(a.code or "none", 0) + 1
        return Trip(total, permanent, errors, self.window, codes)
