"""The one way follow-up work is enqueued: typed against the actor's own signature.

``enqueue(actor, *args)`` type-checks the arguments against the actor function (mypy
sees a wrong month type or a missing argument), and ``enqueue_in`` delays it. Callers
enqueue only after the transaction that created the follow-up's rows has committed,
so a worker never picks up work whose rows it cannot see yet.

Every message is checked against its actor's schema (worker/arguments.py) and signed
with BROKER_SIGNING_KEY as it is built (``SignedActor``, worker/signing.py: the same for
periodiq's kicks and the operator's ``enqueue`` commands); workers refuse the rest.
"""

from __future__ import annotations

from typing import Any, ParamSpec

import dramatiq

P = ParamSpec("P")


def enqueue(
    actor: dramatiq.Actor[P, Any], *args: P.args, **kwargs: P.kwargs
) -> dramatiq.Message[Any]:
    """Send ``actor(*args, **kwargs)`` to its queue now."""
    return actor.send(*args, **kwargs)


def enqueue_in(
    seconds: float | None, actor: dramatiq.Actor[P, Any], *args: P.args, **kwargs: P.kwargs
) -> dramatiq.Message[Any]:
    """Send ``actor(*args, **kwargs)`` to run after ``seconds`` (None or 0: now)."""
    delay = max(0, int(seconds * 1000)) if seconds else None
    return actor.send_with_options(args=args, kwargs=kwargs, delay=delay)
