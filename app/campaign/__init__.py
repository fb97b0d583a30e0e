"""Campaign controls (issue 20): what a bank's operations desk expects around a wave.

* **opt-outs** (``optouts``, ``keywords``): a 21610 answer from the carrier or a STOP-type
  keyword texted to us (English or Hebrew) records the customer's opt-out, START-type
  words their opt-in; opted-out customers are skipped by later months' outboxes
  (``OPTED_OUT``) and by a wave in flight;
* **the kill switch and the circuit breaker** (``switch``, ``breaker``, ``controls``):
  ``premium-notify sms pause|resume``, kept in the database and read by every sender
  every few seconds; an automatic pause when the carrier refuses too many messages;
* **cost** (``costs``): the carrier's segments and price per message, from status
  callbacks and polled messages;
* what operators see (``report``): the month report's and ``status``'s figures.

SQL in ``repository``; docs/campaign.md.
"""
