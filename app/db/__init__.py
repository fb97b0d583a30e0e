"""Database access: declarative base, engine and session scope, embedded server."""
