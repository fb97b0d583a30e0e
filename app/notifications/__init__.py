"""SMS: templates, segments, outbox, carrier client, sending, send window, reconciler."""
