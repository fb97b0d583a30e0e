"""``premium-notify-worker``: ``dramatiq`` with JSON logs in every one of its processes.

``dramatiq`` formats the lines of its main process (booting, signals, a worker process
that died) and of its worker processes before boot with its own text format
(``logging.basicConfig``). This entry point takes the same arguments as ``dramatiq`` and
installs our masking JSON formatter (app/observability/logging.py) in the main process
and, before anything is logged, in every worker and fork process.

The multiprocess metrics directory is chosen here, before dramatiq starts any process:
``$PROMETHEUS_MULTIPROC_DIR`` or ``<tmp>/premium-notify-metrics/worker-<this pid>`` (the
directory plain ``dramatiq`` would get), with the role ``worker`` for every child.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from app.config_checks import require_valid_settings
from app.observability import multiprocess as mp
from app.observability.logging import configure_logging


def _json_logging(stream: Any, level: int) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    configure_logging(level, json_format=True, stream=stream)


def main(argv: list[str] | None = None) -> int:
    # A bad setting: one line and exit 2 here, as dramatiq's workers would (worker/broker.py).
    require_valid_settings()
    os.environ[mp.ENV_ROLE] = mp.Role.WORKER.value
    os.environ.setdefault(mp.ENV_DIR, str(mp.BASE_DIR / f"worker-{os.getpid()}"))
    mp.reset()  # this process imported the worker package as role "other"
    mp.configure_process()  # role worker, the directory above (created): children inherit it
    import dramatiq.cli as cli

    def parent(args: Any, *, stream: Any = sys.stderr) -> logging.Logger:
        _json_logging(stream, cli.VERBOSITY.get(args.verbose, logging.DEBUG))
        return logging.getLogger("dramatiq.MainProcess")

    def child(prefix: str) -> Any:
        def setup(args: Any, child_id: int, logging_pipe: Any) -> logging.Logger:
            sys.stdout = sys.stderr = logging_pipe
            _json_logging(logging_pipe, cli.VERBOSITY.get(args.verbose, logging.DEBUG))
            logging.getLogger("pika").setLevel(logging.CRITICAL)
            return logging.getLogger(f"dramatiq.{prefix}({child_id})")

        return setup

    cli.setup_parent_logging = parent
    cli.setup_worker_logging = child("WorkerProcess")
    cli.setup_fork_logging = child("ForkProcess")
    parser = cli.make_argument_parser()  # type: ignore[no-untyped-call]
    parsed = parser.parse_args(sys.argv[1:] if argv is None else argv)
    result: int = cli.main(parsed)  # type: ignore[no-untyped-call]
    return result


if __name__ == "__main__":
    raise SystemExit(main())
