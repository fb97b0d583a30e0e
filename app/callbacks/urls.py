"""The receiver's paths, and the URLs the carrier is told to call.

A status callback URL names its notification (``/v1/callbacks/status/<uuid>``), inside
the signed URL, so even the first callback of a create whose answer was lost says which
notification it belongs to.
"""

from __future__ import annotations

import uuid

STATUS_PREFIX = "/v1/callbacks/status"
STATUS_PATH = STATUS_PREFIX + "/{notification_id}"
INBOUND_PATH = "/v1/callbacks/inbound"


def status_callback_url(public_url: str, notification_id: uuid.UUID) -> str:
    """The StatusCallback of one notification's create (``CALLBACK_PUBLIC_URL`` based)."""
    return f"{public_url.rstrip('/')}{STATUS_PREFIX}/{notification_id}"


def inbound_url(public_url: str) -> str:
    """The URL to configure as the sender number's (or Messaging Service's) inbound webhook."""
    return f"{public_url.rstrip('/')}{INBOUND_PATH}"


def signed_url(public_url: str, path: str, query: str) -> str:
    """The URL the carrier signed: the public base, then the path and query it called."""
    return f"{public_url.rstrip('/')}{path}" + (f"?{query}" if query else "")
