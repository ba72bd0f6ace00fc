"""What the app toolkit's trio and blocking halves share: per-slide locks, the context and job
bases, and the job bookkeeping. The halves themselves are written once in ``_async_app.py``
(``_sync_app.py`` is generated from it by ``scripts/unasync.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager
from typing import Any

import trio

from sectra_core import operations
from sectra_core import schemas as s
from sectra_core.app.declaration import AnalysisApp
from sectra_core.errors import ConfigurationError, JobCancelled, safe_traceback
from sectra_core.app.jobs import CallFlow, JobRunner, JobSpec, StoredJobRunner, job_spec, perform, prepare_result, status_result, update_flow

__all__ = ["SlideLocks", "FINAL_STATUS_TIMEOUT"]

log = logging.getLogger("sectra_transports.app.runners")

Message = s.Invocation | s.ImageNotification
_Key = tuple[str, str]

# Tokens cancelled while work runs (checked by the jobs' progress()); forgotten when the job ends.
_cancelled_tokens: set[str] = set()
_cancelled_lock = threading.Lock()

#: How long a failing or cancelled job may take to write its final status.
FINAL_STATUS_TIMEOUT = 10.0


class SlideLocks:
    """One lock per (application, slide), so ``start_job(reuse=True)`` finds-or-creates the slide's
    result one invocation at a time in this process (two at once would both find nothing and both
    create, or both update one ``versionId`` and conflict).

    Under trio, async handlers and sync handlers (in worker threads) share trio semaphores; under
    asyncio Quart, where only sync handlers run, plain thread locks. Entries live only while used.
    """

    def __init__(self) -> None:
        self._trio: dict[_Key, list[Any]] = {}  # key -> [Semaphore, users]; touched on the trio thread only
        self._threads: dict[_Key, list[Any]] = {}  # key -> [Lock, users], under _guard
        self._guard = threading.Lock()

    async def _acquire(self, key: _Key) -> None:
        entry = self._trio.setdefault(key, [trio.Semaphore(1), 0])
        entry[1] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._forget(key, entry)
            raise

    def _release(self, key: _Key) -> None:
        entry = self._trio[key]
        entry[0].release()
        self._forget(key, entry)

    def _forget(self, key: _Key, entry: list[Any]) -> None:
        entry[1] -= 1
        if not entry[1]:
            del self._trio[key]

    @asynccontextmanager
    async def hold(self, key: _Key) -> AsyncIterator[None]:
        """Hold ``key``'s lock (in a trio task)."""
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    @contextmanager
    def hold_sync(self, key: _Key, trio_token: trio.lowlevel.TrioToken | None) -> Iterator[None]:
        """Hold ``key``'s lock from a worker thread (of the trio run ``trio_token``, if any)."""
        if trio_token is not None:
            trio.from_thread.run(self._acquire, key, trio_token=trio_token)
            try:
                yield
            finally:
                trio.from_thread.run_sync(self._release, key, trio_token=trio_token)
            return
        with self._guard:
            entry = self._threads.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if not entry[1]:
                    del self._threads[key]


class _ContextBase:
    def __init__(
        self, app: AnalysisApp, invocation: Message, client: Any, runner: JobRunner | None,
        locks: SlideLocks | None = None, trio_token: trio.lowlevel.TrioToken | None = None,
    ) -> None:
        #: The decoded invocation or image notification.
        self.invocation = invocation
        #: The app's declaration.
        self.app = app
        #: A client for the invocation's callback URL and token.
        self.client = client
        self._runner = runner
        self._info: s.ImageInfo | None = getattr(invocation, "image_info", None)
        self._locks = locks if locks is not None else SlideLocks()
        self._trio_token = trio_token

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.action} {self.application_id}>"

    @property
    def action(self) -> str:
        """``create``, ``modify``, ``cancel``, ``delete`` or ``notification``."""
        return "notification" if isinstance(self.invocation, s.ImageNotification) else self.invocation.action

    @property
    def slide_id(self) -> str:
        """The slide the invocation is about."""
        return self.invocation.slide_id

    @property
    def application_id(self) -> str:
        """The app id the invocation was sent to."""
        return self.invocation.application_id

    @property
    def context(self) -> Any:
        """The registration ``context`` Sectra echoes back (spec §1.2)."""
        return self.invocation.context

    def _runner_now(self) -> JobRunner:
        if self._runner is None:
            raise ConfigurationError("this app has no job runner (see AnalysisApp(job_runner=...))")
        return self._runner

    def _prepared(self, result: s.Result) -> s.Result:
        return prepare_result(result, self.slide_id, self.app.app_version, image=self._info)

    @property
    def _slide_key(self) -> _Key:
        return (self.application_id, self.slide_id)

    def _async_slide_lock(self) -> AbstractAsyncContextManager[None]:
        # For trio handlers: the slide's lock as a trio task holds it.
        return self._locks.hold(self._slide_key)

    def _slide_lock(self) -> AbstractContextManager[None]:
        # For sync handlers in worker threads (of the trio run, if any).
        return self._locks.hold_sync(self._slide_key, self._trio_token)

    def _running_result(self, work: Any) -> int | str | None:
        # A queue runner answers a duplicate invocation with the result of the job already queued
        # or running for this slide and work, instead of starting a second one (issue #16).
        if not isinstance(self._runner, StoredJobRunner):
            return None
        return self._runner.claim(self.application_id, self.slide_id, work)

    def _start(self, stored: s.ResultResponse, work: Any) -> s.ResultResponse:
        if not isinstance(self.invocation, (s.CreateInvocation, s.ImageNotification)):
            raise ConfigurationError("background jobs start from create invocations or image notifications")
        spec = job_spec(self.invocation, stored, app_version=self.app.app_version, client_options=self.app.client_options)
        self._runner_now().submit(spec, work)
        return stored


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
    def cancelled(self) -> bool:
        """Whether a ``cancel`` invocation asked this job to stop."""
        token = self.spec.cancellation_token
        with _cancelled_lock:
            return token is not None and token in _cancelled_tokens

    def _check_cancelled(self) -> None:
        # Trio work is cancelled by its cancel scope; work in a thread learns of it here.
        if self.cancelled:
            raise JobCancelled(f"result {self.spec.result_id}: the analysis was cancelled")

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
            self.info = yield from perform(operations.get_image_metadata(self.spec.slide_id))
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
        return (yield from self._replace_flow(prepare_result(result, self.spec.slide_id, self.spec.app_version, image=self.info)))


def _client_args(spec: JobSpec) -> dict[str, Any]:
    return {"url": spec.callback.url, "token": spec.callback.token, "app_version": spec.app_version, **spec.client_options}


def _log_failure(spec: JobSpec, exc: BaseException) -> None:
    # Never exc_info: a foreign exception's message may quote PHI (see safe_traceback).
    log.error("background analysis for result %s failed: %s", spec.result_id, safe_traceback(exc))


def _failure_text(exc: BaseException) -> str:
    # The type only: an exception's message may quote patient data (PHI never goes into results or logs).
    return f"Analysis failed ({type(exc).__name__})"


def _forget_cancelled(token: str | None) -> None:
    with _cancelled_lock:
        _cancelled_tokens.discard(token or "")


def _mark_cancelled(token: str) -> None:
    with _cancelled_lock:
        _cancelled_tokens.add(token)
