"""Carrier callbacks (issue 19): a small ASGI receiver, its own process and compose service.

Twilio POSTs signed forms when a message's status changes (to the per-notification URL
each create carries) and when a customer texts us. The receiver checks the signature,
stores the receipt as it came (``callback_receipts``, append-only), answers at once and
applies it: a notification's delivery status only moves forward, and the first callback
of a send left ambiguous settles it (``Sending`` -> ``Submitted`` with its sid).

Modules: ``urls`` (the paths and the URLs the carrier is given), ``receipts`` (reading a
form, without personal data), ``repository`` (the SQL), ``service`` (applying a receipt),
``inbound`` (customers' messages; the extension point of opt-outs), ``limits``,
``web`` (the Starlette application), ``server`` (uvicorn). docs/callbacks.md.
"""
