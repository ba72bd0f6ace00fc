"""Background analyses: the job handed to the app's work function, and where jobs run.

``work`` is the app's function. ``async def work(job: AsyncJob) -> Result`` runs in a trio
nursery with the trio client; ``def work(job: SyncJob) -> Result`` runs in a worker thread (or a
process, with a process-pool :class:`ExecutorJobRunner`) with the sync client. Either way the job
owns one stored result: :meth:`AsyncJob.progress` updates it, the returned Result replaces it
(same id), and a failure or cancellation replaces it with a status the pathologist can read
instead of leaving "running" forever.

Runners (``sectra_make_job_runner`` hook): :class:`TrioJobRunner` (default under quart-trio; the
app's own nursery) and :class:`ExecutorJobRunner` (default under asyncio Quart; a thread pool).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from sectra_core import schemas as s
from sectra_core.errors import ConfigurationError, JobCancelled, SectraError, safe_traceback
from sectra_core.geometry import Pyramid
from sectra_core.jobs import CallFlow, JobSpec, prepare_result, status_result, update_flow

from ._calls import arun_calls, run_calls

__all__ = [
    "AsyncJob",
    "SyncJob",
    "run_async_job",
    "run_sync_job",
    "TrioJobRunner",
    "ExecutorJobRunner",
]

log = logging.getLogger("sectra_transports.jobs")

# Tokens cancelled while sync work runs in a thread: checked by SyncJob.progress().
_cancelled_tokens: set[str] = set()
_cancelled_lock = threading.Lock()

#: How long a failing or cancelled job may take to write its final status.
FINAL_STATUS_TIMEOUT = 10.0


class _JobBase:
    """What both kinds of job share: the spec, progress throttling, the flows."""

    #: Progress updates closer together than this (seconds) are skipped, except the last one.
    min_interval = 1.0

    def __init__(self, spec: JobSpec, client: Any) -> None:
        self.spec = spec
        self.client = client
        self.info: s.ImageInfo | None = None
        self._last_report = -float("inf")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec.application_id} result {self.spec.result_id}>"

    @property
    def slide_id(self) -> str:
        """The slide being analysed."""
        return self.spec.slide_id

    @property
    def input(self) -> Any:
        """The invocation's input (e.g. the drawn polygon), or None for a notification."""
        return self.spec.input

    def _due(self, fraction: float) -> bool:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_report < self.min_interval:
            return False
        self._last_report = now
        return True

    def _info_flow(self) -> CallFlow[s.ImageInfo]:
        if self.info is None:
            self.info = yield ("get_image_metadata", (self.spec.slide_id,), {})
        return self.info

    def _replace_flow(self, result: s.Result) -> CallFlow[s.ResultResponse]:
        stored = yield from update_flow(self.spec.application_id, self.spec.result_id, self.spec.version_id, result)
        self.spec = self.spec.with_version(stored.version_id)
        return stored

    def _status_flow(self, text: str, fraction: float | None) -> CallFlow[s.ResultResponse]:
        info = yield from self._info_flow()
        status = status_result(
            self.spec.slide_id, info, text, app_version=self.spec.app_version, fraction=fraction,
            context=self.spec.context,
        )
        return (yield from self._replace_flow(status))

    def _finish_flow(self, result: s.Result) -> CallFlow[s.ResultResponse]:
        return (yield from self._replace_flow(prepare_result(result, self.spec.slide_id, self.spec.app_version)))


class AsyncJob(_JobBase):
    """A background job on trio: ``client`` is an :class:`AsyncSectraClient`."""

    async def image_info(self) -> s.ImageInfo:
        """The slide's metadata (fetched once)."""
        return await arun_calls(self._info_flow(), self.client)

    async def pyramid(self) -> Pyramid:
        """The slide's tile pyramid, for pixel ↔ Sectra coordinates."""
        return Pyramid.from_image_info(await self.image_info())

    async def progress(self, fraction: float, message: str = "Analysis running") -> None:
        """Show progress on the job's result (at most once per :attr:`min_interval`)."""
        fraction = min(max(fraction, 0.0), 1.0)
        if self._due(fraction):
            await arun_calls(self._status_flow(f"{message} ({round(100 * fraction)} %)", fraction), self.client)


class SyncJob(_JobBase):
    """A background job in a worker thread or process: ``client`` is a :class:`SectraClient`."""

    @property
    def cancelled(self) -> bool:
        """Whether a ``cancel`` invocation asked this job to stop."""
        token = self.spec.cancellation_token
        with _cancelled_lock:
            return token is not None and token in _cancelled_tokens

    def image_info(self) -> s.ImageInfo:
        """The slide's metadata (fetched once)."""
        return run_calls(self._info_flow(), self.client)

    def pyramid(self) -> Pyramid:
        """The slide's tile pyramid, for pixel ↔ Sectra coordinates."""
        return Pyramid.from_image_info(self.image_info())

    def progress(self, fraction: float, message: str = "Analysis running") -> None:
        """Show progress; raises :class:`JobCancelled` once the job was cancelled, so long loops stop."""
        if self.cancelled:
            raise JobCancelled(f"result {self.spec.result_id}: the analysis was cancelled")
        fraction = min(max(fraction, 0.0), 1.0)
        if self._due(fraction):
            run_calls(self._status_flow(f"{message} ({round(100 * fraction)} %)", fraction), self.client)


def _client_args(spec: JobSpec) -> dict[str, Any]:
    return {"url": spec.callback.url, "token": spec.callback.token, "app_version": spec.app_version, **spec.client_options}


def _log_failure(spec: JobSpec, exc: BaseException) -> None:
    # Never exc_info: a foreign exception's message may quote PHI (see safe_traceback).
    log.error("background analysis for result %s failed: %s", spec.result_id, safe_traceback(exc))


def _failure_text(exc: BaseException) -> str:
    # The type only: an exception's message may quote patient data (PHI never goes into results or logs).
    return f"Analysis failed ({type(exc).__name__})"


async def run_async_job(spec: JobSpec, work: Callable[[AsyncJob], Awaitable[s.Result]]) -> s.ResultResponse | None:
    """Run async ``work`` to completion and store its result in place of the job's status result."""
    from .trio import AsyncSectraClient

    async with AsyncSectraClient(**_client_args(spec)) as client:
        job = AsyncJob(spec, client)
        try:
            return await arun_calls(job._finish_flow(await work(job)), client)
        except trio.Cancelled:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + FINAL_STATUS_TIMEOUT
                await _quietly_async(arun_calls(job._status_flow("Analysis cancelled", None), client))
            raise
        except Exception as exc:
            _log_failure(spec, exc)
            with trio.move_on_after(FINAL_STATUS_TIMEOUT):
                await _quietly_async(arun_calls(job._status_flow(_failure_text(exc), None), client))
            return None


async def _quietly_async(awaitable: Awaitable[Any]) -> None:
    try:
        await awaitable
    except SectraError as exc:
        log.warning("could not write the job's final status: %s", exc)


def run_sync_job(spec: JobSpec, work: Callable[[SyncJob], s.Result]) -> s.ResultResponse | None:
    """Run sync ``work`` and store its result; top-level so process pools can pickle it."""
    from .urllib3 import SectraClient

    with SectraClient(**_client_args(spec)) as client:
        job = SyncJob(spec, client)
        try:
            return run_calls(job._finish_flow(work(job)), client)
        except JobCancelled:
            text = "Analysis cancelled"
        except Exception as exc:
            _log_failure(spec, exc)
            text = _failure_text(exc)
        finally:
            with _cancelled_lock:
                _cancelled_tokens.discard(spec.cancellation_token or "")
        try:
            run_calls(job._status_flow(text, None), client)
        except SectraError as exc:
            log.warning("could not write the job's final status: %s", exc)
        return None


def _mark_cancelled(token: str) -> None:
    with _cancelled_lock:
        _cancelled_tokens.add(token)


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
