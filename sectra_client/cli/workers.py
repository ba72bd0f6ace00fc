"""``sectra worker``: run an app's queued analyses."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from ._common import EXIT_OK, UsageError, env_default, positive_float

__all__ = ["add_commands", "cmd_worker"]


def cmd_worker(args: argparse.Namespace, out: TextIO) -> int:
    """``sectra worker``: consume the app's queue until SIGTERM (graceful) or Ctrl-C."""
    import logging

    from sectra_transports.app.queue import Worker, load_app, parse_age

    if args.queue_url:
        os.environ["SECTRA_QUEUE"] = args.queue_url  # before the app's module builds the app
    app = load_app(args.app_ref)
    if not app.queue:
        raise UsageError(f"{args.app_ref} has no queue: AnalysisApp(queue=...), SECTRA_QUEUE or --queue-url")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        # Huey logs two INFO lines per task ("Executing", "executed in"): per-job work the
        # in-process runner does not do (issue #16's overhead bar). The health line counts jobs;
        # --verbose shows each one. The consumer's own start and stop lines stay.
        logging.getLogger("huey").setLevel(logging.WARNING)
        logging.getLogger("huey.consumer").setLevel(logging.INFO)
    purge = parse_age(args.purge_downloads_older_than) if args.purge_downloads_older_than else None
    worker = Worker(
        app, queue=args.queue, workers=args.workers, worker_type=args.worker_type, lease=args.lease,
        downloads_dir=args.downloads_dir, purge_older_than=purge, health=out, health_interval=args.health_interval,
        shutdown_timeout=args.shutdown_timeout, check_token_after=args.check_token_after,
        give_up_after=args.give_up_after,
    )
    worker.run()
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``worker`` to the ``sectra`` parser's ``sub``."""
    p = sub.add_parser("worker", help="run an app's queued analyses (AnalysisApp(queue=...) or SECTRA_QUEUE)")
    p.add_argument("app_ref", metavar="APP_REF", help="the app as module:attribute, e.g. myapp:app")
    p.add_argument("--workers", type=int, default=1, help="jobs run at once (default %(default)s)")
    p.add_argument("--worker-type", choices=["process", "thread"], default="process",
                   help="run jobs in child processes (default) or threads")
    p.add_argument("--queue", default="default", help="the named queue to take jobs from (default %(default)s)")
    p.add_argument("--queue-url", default=None, metavar="URL",
                   help="the queue, when the app names none: sqlite:////abs/path/jobs.db or rediss://:pw@host:6380/0 "
                        "(env SECTRA_QUEUE; Redis also needs SECTRA_QUEUE_SECRET)")
    p.add_argument("--lease", type=positive_float, default=None, metavar="SECONDS",
                   help="a running job whose worker stops beating this long is queued again (default 30)")
    p.add_argument("--downloads-dir", default=env_default("SECTRA_DOWNLOADS_DIR"),
                   help="where jobs keep downloaded slide files (env SECTRA_DOWNLOADS_DIR)")
    p.add_argument("--purge-downloads-older-than", default=None, metavar="AGE",
                   help="delete downloaded files older than AGE (90s, 15m, 24h, 7d) every little while")
    p.add_argument("--health-interval", type=positive_float, default=30.0, metavar="SECONDS",
                   help="print a JSON health line this often (and at start and stop; default %(default)s)")
    p.add_argument("--check-token-after", type=float, default=30.0, metavar="SECONDS",
                   help="check the callback token of a job that waited this long, falling back to the service "
                        "account (env SECTRA_USERNAME/SECTRA_PASSWORD) if it expired (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="log at DEBUG (tokens and patient data are never logged)")
    p.add_argument("--shutdown-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="on SIGTERM, wait this long for running jobs, then queue them again (default: wait)")
    p.add_argument("--give-up-after", type=positive_float, default=300.0, metavar="SECONDS",
                   help="keep trying to reach an unreachable queue (or one that refuses the password) this long, "
                        "then exit with status 1 (default %(default)s)")
    p.set_defaults(func=cmd_worker)
