"""Signed broker messages: only our own processes can give a worker work.

Anyone who can write to Redis can push a message (``redis-cli RPUSH`` + ``HSET``), so a
worker does not trust a message for being on its queue. Every message our code builds
(``enqueue``, an operator's ``enqueue`` command, periodiq's kicks: they all go through
``Actor.message_with_options``) gets an HMAC-SHA256 over its identity and content from
``BROKER_SIGNING_KEY`` (``SignedActor``). ``SigningMiddleware`` checks it in the worker
before the actor runs, then the arguments against the actor's schema
(worker/arguments.py). A message that fails either check is never executed: it is
failed at once (no retries), so the broker moves it to the dead-letter queue
(``premium-notify dlq list``), counted in ``pn_broker_messages_refused_total{queue,reason}``
and logged with its id and the reason, never with its arguments.

What is signed: message id, creation time, actor, canonical queue (a delayed message's
``.DQ`` queue counts as its queue), args, kwargs and every option except those the broker
and its middleware change on the way (``UNSIGNED_OPTIONS``: Redis id, eta, retry count and
traceback, the replay stamp, Sentry's trace headers). A retry, a delay or a dead-letter
replay therefore keeps a valid signature, and nothing in a worker re-signs a message it
received. ``BROKER_SIGNING_KEY`` may hold several comma-separated keys: the first signs,
any verifies (rotation). Outside production, with no key set, a fixed development key is
used (with a warning) so the checks always run; in production a worker or scheduler
without a key does not start.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sys
from typing import Any, ParamSpec, TypeVar

import dramatiq
from dramatiq.common import q_name
from dramatiq.middleware import Middleware

from app.config import get_settings
from worker.arguments import InvalidArguments, check_arguments
from worker.resources import Queue

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

SIGNATURE_OPTION = "pn_signature"
UNSIGNED_OPTIONS = frozenset(
    {
        SIGNATURE_OPTION,
        "redis_message_id",
        "eta",
        "retries",
        "traceback",
        "requeue_timestamp",
        "dlq_replayed_at",
        "_sentry_headers",  # sentry_sdk's SentryMiddleware.before_enqueue (trace propagation)
        "sentry_headers",
    }
)
# Not a secret: it only keeps the checks running on a development machine.
DEVELOPMENT_KEY = "premium-notify-development-broker-signing-key"
_warned: list[bool] = []


class SigningKeyMissing(RuntimeError):
    """Production without BROKER_SIGNING_KEY."""


def signing_keys() -> list[bytes]:
    """The configured keys, the signing one first."""
    settings = get_settings()
    secret = settings.broker_signing_key
    if secret is None:
        if settings.is_production():
            raise SigningKeyMissing("BROKER_SIGNING_KEY is not set (required in production)")
        if not _warned:
            _warned.append(True)
            from app.observability import multiprocess

            # Said by workers and the scheduler; an operator's command keeps its one line.
            if multiprocess.current()[0] is not multiprocess.Role.OTHER:
                log.warning("BROKER_SIGNING_KEY is not set: signing with the development key")
        return [DEVELOPMENT_KEY.encode()]
    keys = [k.strip() for k in secret.get_secret_value().split(",") if k.strip()]
    return [k.encode() for k in keys]


def require_signing_key() -> None:
    """The workers' and scheduler's start: one line and exit 2 instead of a traceback."""
    try:
        signing_keys()
    except SigningKeyMissing as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None


def payload(message: dramatiq.Message[Any]) -> bytes:
    """The bytes the signature covers (canonical JSON)."""
    options = {k: v for k, v in message.options.items() if k not in UNSIGNED_OPTIONS}
    body = {
        "id": message.message_id,
        "ts": message.message_timestamp,
        "actor": message.actor_name,
        "queue": q_name(message.queue_name),
        "args": list(message.args),
        "kwargs": message.kwargs,
        "options": options,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(key: bytes, message: dramatiq.Message[Any]) -> str:
    return hmac.new(key, payload(message), hashlib.sha256).hexdigest()


def sign(message: dramatiq.Message[Any]) -> dramatiq.Message[Any]:
    message.options[SIGNATURE_OPTION] = digest(signing_keys()[0], message)
    return message


def signature_valid(message: dramatiq.Message[Any]) -> bool:
    given = message.options.get(SIGNATURE_OPTION)
    if not isinstance(given, str):
        return False
    return any(hmac.compare_digest(given, digest(key, message)) for key in signing_keys())


def refusal(broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> tuple[str, str] | None:
    """(reason, detail) when ``message`` must not run; None when it may."""
    if SIGNATURE_OPTION not in message.options:
        return "unsigned", "no signature"
    if not signature_valid(message):
        return "bad_signature", "the signature does not match"
    try:
        fn = broker.get_actor(message.actor_name).fn
        check_arguments(message.actor_name, fn, message.args, message.kwargs)
    except (InvalidArguments, dramatiq.ActorNotFound) as exc:
        return "invalid_arguments", str(exc)
    return None


class SignedActor(dramatiq.Actor[P, R]):
    """An actor whose messages are checked against its schema and signed when built."""

    def message_with_options(
        self, *, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, **options: Any
    ) -> dramatiq.Message[R]:
        check_arguments(self.actor_name, self.fn, args, kwargs or {})
        message = super().message_with_options(args=args, kwargs=kwargs, **options)
        sign(message)
        return message


class SigningMiddleware(Middleware):
    """Refuse (dead-letter, count, never run) a message that is unsigned, forged or invalid."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        found = refusal(broker, message)
        if found is None:
            return
        reason, detail = found
        from app.observability import metrics

        queue = q_name(str(message.queue_name))
        queue = queue if queue in set(Queue) else "unknown"
        metrics.BROKER_MESSAGES_REFUSED.labels(queue=queue, reason=reason).inc()
        log.error(
            "refused message %.64s for actor %.64r on queue %s (%s): %s; dead-lettered",
            message.message_id, message.actor_name, queue, reason, detail,
        )  # fmt: skip
        # Failed before it ran: the worker skips the actor and nacks it to the dead letters
        # (Dramatiq's own "skipped" line would repeat the arguments, so no SkipMessage).
        message.fail()
