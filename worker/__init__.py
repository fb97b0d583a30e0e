"""Dramatiq side: broker setup and middleware, thin actors, the periodiq schedule."""
