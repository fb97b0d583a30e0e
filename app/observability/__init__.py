"""Metrics, structured logs, Sentry and system events. No personal data anywhere here."""
