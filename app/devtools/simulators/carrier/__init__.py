"""A Twilio-compatible carrier simulator (the Messages subset the SDKs use).

``premium-notify simulate carrier --port N`` serves it; tests and benchmarks start it
in-process with ``SimulatorThread``. Held to Twilio's own API description
(``tests/devtools/test_carrier_schema.py``) and driven by Twilio's Python and Node SDKs.
What it does, module by module:

* ``model``: configuration, the designated test numbers, each message's lifecycle
  (accepted, queued, sending, sent, delivered / undelivered / late failed, stuck in sent,
  ValidityPeriod expiry);
* ``listing``: list filters (To, From, DateSent in Twilio's formats), ``PA``/``PB`` page
  tokens, list-visibility lag;
* ``callbacks``: signed status callbacks, with loss, duplication, delay and reordering;
* ``state``: the stored messages and their JSON; ``app``: the HTTP API and its faults
  (429, 500 before or after storing, accept-then-time-out, outage).
"""

from app.devtools.simulators.carrier.app import (
    CarrierSimulator,
    SimulatorThread,
    error,
    serve,
)
from app.devtools.simulators.carrier.callbacks import (
    CallbackDispatcher,
    CallbackRecord,
    twilio_signature,
)
from app.devtools.simulators.carrier.model import (
    API,
    CREATE_FAILURES,
    DELIVERY_FAILURES,
    ERROR_TEXT,
    LATE_FAILURES,
    SENDER_FAILURES,
    STUCK_IN_SENT,
    SimConfig,
    SimMessage,
)
from app.devtools.simulators.carrier.state import CarrierState, max_in_any_second

__all__ = [
    "API",
    "CREATE_FAILURES",
    "DELIVERY_FAILURES",
    "ERROR_TEXT",
    "LATE_FAILURES",
    "SENDER_FAILURES",
    "STUCK_IN_SENT",
    "CallbackDispatcher",
    "CallbackRecord",
    "CarrierSimulator",
    "CarrierState",
    "SimConfig",
    "SimMessage",
    "SimulatorThread",
    "error",
    "max_in_any_second",
    "serve",
    "twilio_signature",
]
