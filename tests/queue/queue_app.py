"""The app the queue tests serve and ``sectra worker tests.queue.queue_app:app`` runs.

Its queue comes from ``SECTRA_QUEUE`` (each test its own SQLite file or Redis database), its
trusted origin from ``SECTRA_TRUSTED_CALLBACKS``. What a job does is read from the invocation's
``context``: ``steps`` × ``step_s`` seconds of work with ``progress()`` after each step; ``marks``:
a folder where each attempt leaves a file ``<slide>.<pid>.<ns>`` (who ran it, how often);
``fast_rerun``: a second attempt skips the steps; ``download``: write a file into the worker's
downloads folder; ``async``: the same job written as ``async def`` (run under trio by the worker).
"""

from __future__ import annotations

import os
import time

import trio
from pathlib import Path

from sectra_client.app import AnalysisApp, PrimitiveBuilder
from sectra_core import schemas as s
from sectra_transports.app.runners import AsyncJob, SyncJob
from sectra_transports.app.queue import downloads_dir, on_queue


def make_app(queue: str | None = None) -> AnalysisApp:
    """A fresh app (reading ``SECTRA_QUEUE`` when ``queue`` is None)."""
    app = AnalysisApp(application_id="queued", display_name="Queued", manufacturer="Tests", app_version="1.0", queue=queue)

    @app.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        context = ctx.context or {}
        work = analyse_gpu if context.get("gpu") else analyse_async if context.get("async") else analyse
        return ctx.start_job(work)

    return app


def analyse(job: SyncJob) -> s.Result:
    """The test job (see the module docstring)."""
    ctx = job.spec.context or {}
    marks = ctx.get("marks")
    steps = int(ctx.get("steps", 0))
    if marks:
        if ctx.get("fast_rerun") and list(Path(marks).glob(f"{job.slide_id}.*")):
            steps = 0  # a re-run after a crash: quick, so the crash test need not wait twice
        Path(marks, f"{job.slide_id}.{os.getpid()}.{time.time_ns()}").write_text("started")
    for i in range(steps):
        time.sleep(float(ctx.get("step_s", 0.05)))
        job.progress((i + 1) / steps)
    folder = downloads_dir()
    if ctx.get("download") and folder:
        Path(folder, f"{job.slide_id}.svs").write_bytes(b"slide")
    return PrimitiveBuilder(job.pyramid()).label((0.01, 0.01), "done").build(job.slide_id, "done")


@on_queue("gpu")
def analyse_gpu(job: SyncJob) -> s.Result:
    """The same job, routed to the ``gpu`` queue."""
    return analyse(job)


app = make_app() if os.environ.get("SECTRA_QUEUE") else None


async def analyse_async(job: AsyncJob) -> s.Result:
    """The test job as ``async def``: trio sleeps, awaited progress, the trio client."""
    ctx = job.spec.context or {}
    marks = ctx.get("marks")
    steps = int(ctx.get("steps", 0))
    if marks:
        Path(marks, f"{job.slide_id}.{os.getpid()}.{time.time_ns()}").write_text("started")
    for i in range(steps):
        await trio.sleep(float(ctx.get("step_s", 0.05)))
        await job.progress((i + 1) / steps)
    pyramid = await job.pyramid()
    return PrimitiveBuilder(pyramid).label((0.01, 0.01), "done").build(job.slide_id, "done async")
