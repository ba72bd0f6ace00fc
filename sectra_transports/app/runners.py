"""Background analyses: the job handed to the app's work function, and where jobs run.

``work`` is the app's function. ``async def work(job: AsyncJob) -> Result`` runs in a trio
nursery with the trio client; ``def work(job: SyncJob) -> Result`` runs in a worker thread (or a
process, with a process-pool :class:`ExecutorJobRunner`) with the sync client. Either way the job
owns one stored result: :meth:`AsyncJob.progress` updates it, the returned Result replaces it
(same id), and a failure or cancellation replaces it with a status the pathologist can read
instead of leaving "running" forever.

Runners (``sectra_make_job_runner`` hook): :class:`TrioJobRunner` (default under quart-trio; the
app's own nursery) and :class:`ExecutorJobRunner` (default under asyncio Quart; a thread pool).
The jobs and their drivers are written once (``_async_app.py``; the blocking ones are generated
by ``scripts/unasync.py``); the runners are here.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
from typing import Any

import trio

from sectra_core.errors import ConfigurationError
from sectra_core.app.jobs import JobSpec

from ._base import FINAL_STATUS_TIMEOUT, _mark_cancelled
from ._async_app import AsyncJob, run_async_job
from ._sync_app import SyncJob, run_sync_job

__all__ = [
    "AsyncJob",
    "SyncJob",
    "run_async_job",
    "run_sync_job",
    "TrioJobRunner",
    "ExecutorJobRunner",
    "FINAL_STATUS_TIMEOUT",
]


class TrioJobRunner:
    """Runs jobs as tasks of a trio nursery: ``nursery``, or the serving quart-trio app's own.

    Async work runs on trio; sync work runs in a worker thread (``trio.to_thread``). ``cancel``
    cancels async work at once and makes sync work's next ``progress()`` raise.
    """

    def __init__(self, nursery: trio.Nursery | None = None) -> None:
        self._nursery = nursery
        self._scopes: dict[str, trio.CancelScope] = {}
        self._active = 0
        self._idle: trio.Event | None = None

    def _nursery_now(self) -> trio.Nursery:
        if self._nursery is not None:
            return self._nursery
        try:
            from quart import current_app

            return current_app.nursery  # type: ignore[attr-defined]  # QuartTrio sets it
        except (ImportError, RuntimeError, AttributeError):
            raise ConfigurationError(
                "no nursery for background jobs: serve the app with quart-trio or pass TrioJobRunner(nursery)"
            ) from None

    def attach(self, nursery: trio.Nursery) -> None:
        """Use ``nursery`` for jobs from now on (the serving app's, set on each request)."""
        self._nursery = nursery

    @property
    def active(self) -> int:
        """Jobs started and not yet finished."""
        return self._active

    def submit(self, spec: JobSpec, work: Any) -> None:
        """Start ``work`` in the nursery."""
        self._active += 1
        self._nursery_now().start_soon(self._run, spec, work, name=f"sectra-job-{spec.result_id}")

    async def _run(self, spec: JobSpec, work: Any) -> None:
        token = spec.cancellation_token
        try:
            with trio.CancelScope() as scope:
                if token:
                    self._scopes[token] = scope
                if inspect.iscoroutinefunction(work):
                    await run_async_job(spec, work)
                else:
                    await trio.to_thread.run_sync(run_sync_job, spec, work)
        finally:
            if token:
                self._scopes.pop(token, None)
            self._active -= 1
            if self._active == 0 and self._idle is not None:
                self._idle.set()

    def cancel(self, cancellation_token: str) -> bool:
        """Cancel the job started for ``cancellation_token``."""
        scope = self._scopes.get(cancellation_token)
        if scope is None:
            return False
        _mark_cancelled(cancellation_token)
        scope.cancel()
        return True

    async def join(self) -> None:
        """Wait until no job is running (tests; graceful shutdown)."""
        while self._active:
            self._idle = trio.Event()
            await self._idle.wait()


class ExecutorJobRunner:
    """Runs sync work on a :mod:`concurrent.futures` executor (a thread pool unless given one).

    With a ``ProcessPoolExecutor`` the work function must be importable (top-level) and
    cancellation reaches only jobs that have not started.
    """

    def __init__(self, executor: concurrent.futures.Executor | None = None, *, max_workers: int = 4) -> None:
        self._own = executor is None
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(max_workers, thread_name_prefix="sectra-job")
        self._futures: dict[str, concurrent.futures.Future[Any]] = {}
        self._all: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()

    def submit(self, spec: JobSpec, work: Any) -> None:
        """Queue ``work``; async work needs a :class:`TrioJobRunner`."""
        if inspect.iscoroutinefunction(work):
            raise ConfigurationError("async work needs the trio job runner (serve the app with mode='trio')")
        future = self.executor.submit(run_sync_job, spec, work)
        with self._lock:
            self._all.add(future)
            if spec.cancellation_token:
                self._futures[spec.cancellation_token] = future
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._all.discard(future)
            for token, f in list(self._futures.items()):
                if f is future:
                    del self._futures[token]

    def cancel(self, cancellation_token: str) -> bool:
        """Cancel a queued job, or make a running one's next ``progress()`` raise."""
        with self._lock:
            future = self._futures.get(cancellation_token)
        if future is None:
            return False
        if not future.cancel():
            _mark_cancelled(cancellation_token)
        return True

    def join(self, timeout: float | None = None) -> None:
        """Wait for every submitted job."""
        with self._lock:
            pending = set(self._all)
        concurrent.futures.wait(pending, timeout)

    def shutdown(self) -> None:
        """Stop the executor (if the runner created it) after the running jobs finish."""
        if self._own:
            self.executor.shutdown(wait=True)
