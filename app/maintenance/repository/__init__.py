"""All SQL of the maintenance stage, one module per subdomain.

Functions take a ``Session`` (or, for backups and cold storage, the DB-API connection or
cursor their caller opened) and never commit: the caller at the top (an actor, a CLI
command, or a service handed a ``SessionScope``) owns the transaction.
"""
