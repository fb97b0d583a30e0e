"""What each actor accepts from a message: one strict schema per actor name.

A message is data from the broker, not a call from trusted code: the signing middleware
(worker/signing.py) checks every message's arguments against its actor's schema before
the actor runs, and ``SignedActor`` checks them when a message is built, so a producer's
mistake fails at the producer. The rules: dates and months are parsed strictly (``YYYY-MM-DD``,
``YYYY-MM``, within 2000-2100), ids are canonical UUIDs, counts are bounded, modes are
known enum values, booleans are booleans, and nothing names a file, a URL or a host:
where work reads from comes from settings (``BALANCE_SOURCE``), never from a message.
An actor without a schema here accepts no message at all (fail closed).
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from app.months import Month


class InvalidArguments(ValueError):
    """The message's arguments do not fit the actor's schema (the text has no values)."""


_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(value: str) -> str:
    if not _DAY_RE.fullmatch(value):
        raise ValueError("expected a date YYYY-MM-DD")
    parsed = date.fromisoformat(value)
    if not 2000 <= parsed.year <= 2100:
        raise ValueError("date out of range")
    return value


def _month(value: str) -> str:
    parsed = Month.parse(value)
    if value != str(parsed) or not 2000 <= parsed.year <= 2100:
        raise ValueError("expected a month YYYY-MM")
    return value


def _uuid(value: str) -> str:
    if str(uuid.UUID(value)) != value:
        raise ValueError("expected a canonical UUID")
    return value


Day = Annotated[str, AfterValidator(_day)]
MonthText = Annotated[str, AfterValidator(_month)]
UuidText = Annotated[str, AfterValidator(_uuid)]
# Who asked for a run: the worker, the scheduler, or an operator's CLI login.
TriggeredBy = Annotated[str, Field(pattern=r"^(worker|scheduler|cli(:[A-Za-z0-9._-]{1,64})?)$")]


class Arguments(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class StartDay(Arguments):
    day: Day
    shard_count: Annotated[int, Field(ge=1, le=1024)] | None = None
    # Only the configured core-banking API may be named; a file source comes from settings.
    source: Literal["http"] | None = None


class CheckShard(Arguments):
    run_id: UuidText
    shard: Annotated[int, Field(ge=0, lt=1024)]


class RepairGaps(Arguments):
    start: Day
    end: Day


class NoArguments(Arguments):
    pass


class PollDay(Arguments):
    day: Day
    mode: Literal["auto", "bulk", "fetch"] = "auto"


class Poll(Arguments):
    lookback_days: Annotated[int, Field(ge=1, le=366)] | None = None
    mode: Literal["auto", "bulk", "fetch"] = "auto"


class RetentionRun(Arguments):
    triggered_by: TriggeredBy = "worker"


class PartitionsEnsure(Arguments):
    triggered_by: TriggeredBy = "worker"


class PrepareMonth(Arguments):
    month: MonthText


class SendBatch(Arguments):
    batch_id: UuidText


class RunMonth(Arguments):
    month: MonthText
    recompute: bool = False
    start_notifications: bool = True


SCHEMAS: dict[str, type[Arguments]] = {
    "balances.start_day": StartDay,
    "balances.check_shard": CheckShard,
    "balances.repair_gaps": RepairGaps,
    "balances.daily_kick": NoArguments,
    "balances.gap_repair_kick": NoArguments,
    "delivery.poll_day": PollDay,
    "delivery.poll": Poll,
    "delivery.poll_kick": NoArguments,
    "maintenance.retention_run": RetentionRun,
    "maintenance.retention_kick": NoArguments,
    "maintenance.partitions_ensure": PartitionsEnsure,
    "maintenance.partitions_kick": NoArguments,
    "notifications.prepare_month": PrepareMonth,
    "notifications.send_batch": SendBatch,
    "notifications.reconcile": NoArguments,
    "notifications.reconcile_kick": NoArguments,
    "qualification.run_month": RunMonth,
    "qualification.monthly_kick": NoArguments,
}


def _describe(exc: ValidationError) -> str:
    # Locations and reasons only: a message's values may be personal (a phone for an id).
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"]) or "arguments"
        parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def check_arguments(actor_name: str, fn: Callable[..., Any] | None, args: Any, kwargs: Any) -> None:
    """Raise InvalidArguments unless ``args``/``kwargs`` fit ``actor_name``'s schema."""
    schema = SCHEMAS.get(actor_name)
    if schema is None:
        raise InvalidArguments(f"actor {actor_name!r} accepts no messages (no schema)")
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise InvalidArguments("args must be a list and kwargs an object")
    names = list(schema.model_fields)
    if fn is not None:
        names = list(inspect.signature(fn).parameters)
    if len(args) > len(names):
        raise InvalidArguments(f"{len(args)} positional arguments, at most {len(names)}")
    values = dict(zip(names, args, strict=False))
    duplicate = set(values) & set(kwargs)
    if duplicate:
        raise InvalidArguments(f"argument(s) given twice: {', '.join(sorted(duplicate))}")
    try:
        schema.model_validate({**values, **kwargs})
    except ValidationError as exc:
        raise InvalidArguments(_describe(exc)) from None
