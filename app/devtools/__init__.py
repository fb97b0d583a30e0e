"""Tooling that is not the product: the demo, the simulators of external systems, and
test-only fault injection. Production code (every other package of ``app`` and
``worker``) imports nothing from here; a guard test keeps it so."""
