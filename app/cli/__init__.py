"""The operator CLI, ``premium-notify``.

Command modules register themselves on the Typer groups of ``app.cli.groups``;
``app.cli.main`` imports them all. The ``enqueue`` commands are the only part of
``app`` that imports the ``worker`` package (lazily), since they hand work to the broker.
"""
