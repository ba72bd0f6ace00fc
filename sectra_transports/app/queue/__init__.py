"""Analyses that survive restarts and scale past one machine: a job queue on Huey (issue #16).

    app = AnalysisApp(..., queue="sqlite:////var/lib/myapp/jobs.db")   # or SECTRA_QUEUE=rediss://:pw@host:6380/0
                                                                    # (Redis: and SECTRA_QUEUE_SECRET)

    @app.on_create
    def create(ctx):
        return ctx.start_job(analyse)                      # analyse: a module-level function

    $ sectra worker myapp:app --workers 4                  # as many as you like, on any machine

The app answers "Analysis queued" at once and stores the job in the queue; ``sectra worker``
processes run it with the same job drivers as the in-process runners (see docs/app-guide.md,
"Running analyses on workers"). Needs the ``queue`` extra: ``pip install "sectra-sdk[queue]"``.
"""

from __future__ import annotations

from .backend import DEFAULT_QUEUE, QUEUE_ENV, QueueBackend
from .runner import HueyJobRunner, JobRecord, on_queue, runner_for
from .signing import SECRET_ENV, RefusedMessage, SignedSerializer
from .store import JobStore, RedisJobStore, SqliteJobStore
from .worker import (
    ACCESS_EXPIRED, DOWNLOADS_DIR_ENV, GIVE_UP_AFTER, QueueUnreachable, Worker, load_app, parse_age, purge_downloads,
)

__all__ = [
    "ACCESS_EXPIRED", "DEFAULT_QUEUE", "DOWNLOADS_DIR_ENV", "GIVE_UP_AFTER", "QUEUE_ENV", "SECRET_ENV", "HueyJobRunner",
    "JobRecord", "JobStore", "QueueBackend", "QueueUnreachable", "RedisJobStore", "RefusedMessage", "SignedSerializer",
    "SqliteJobStore", "Worker", "downloads_dir", "load_app", "on_queue", "parse_age", "purge_downloads", "runner_for",
]


def downloads_dir() -> str | None:
    """The folder a worker keeps downloaded slide files in (``sectra worker --downloads-dir``),
    purged of old files by ``--purge-downloads-older-than``; None when none is configured."""
    import os

    return os.environ.get(DOWNLOADS_DIR_ENV) or None
