"""Operations: status, dead letters, GDPR, retention and archival, backups, database roles.

Services here take a Session (or a transaction factory for multi-transaction jobs) and
never import Dramatiq: the broker's Redis layout is read with a plain Redis client.
"""
