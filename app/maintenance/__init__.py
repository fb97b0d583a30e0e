"""Maintenance: status, dead letters, GDPR, retention and archival, backups, database roles.

All SQL is in ``app.maintenance.repository``. Services take a Session and never commit
(the actor or CLI command owns the transaction); the retention run, which commits many
times, is handed a ``SessionScope`` instead. Nothing here imports Dramatiq: the broker's
Redis layout is read with a plain Redis client.
"""
