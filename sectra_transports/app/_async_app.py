"""The app toolkit's I/O half, written once for trio; ``scripts/unasync.py`` generates the blocking
``_sync_app.py`` from it.

* :func:`arun_calls` drives a core call flow (:mod:`sectra_core.app.jobs`): each
  :class:`~sectra_core.endpoints.Operation` it yields goes to ``client.send``; SDK errors are
  thrown back into the flow to handle or pass on.
* :class:`AsyncInvocationContext`: what an ``async def`` handler receives (the blocking twin, for
  plain ``def`` handlers run in a worker thread, is ``InvocationContext``).
* :class:`AsyncJob` and :func:`run_async_job`: a background analysis that owns one stored result
  (the blocking twins: ``SyncJob``, ``run_sync_job``).

Import them from :mod:`sectra_transports.app.contexts` and :mod:`sectra_transports.app.runners`.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Awaitable  # unasync: async only
from typing import Any, TypeVar

from sectra_core import schemas as s
from sectra_core.errors import ConfigurationError, JobCancelled, SectraError
from sectra_core.geometry import Pyramid
from sectra_core.app.jobs import CallFlow, JobSpec, StoredJobRunner, placeholder_flow, store_flow

from ._base import (
    FINAL_STATUS_TIMEOUT,
    _client_args,
    _ContextBase,
    _failure_text,
    _forget_cancelled,
    _JobBase,
    _log_failure,
    log,
)
from .._async import AsyncSectraClient
from .._cancellation import async_deadline, async_report_cancellation
from .._concurrency import async_run_blocking

__all__ = ["arun_calls", "AsyncInvocationContext", "AsyncJob", "run_async_job"]

T = TypeVar("T")


async def arun_calls(flow: CallFlow[T], client: AsyncSectraClient) -> T:
    """Run ``flow`` with ``client``: send each operation it yields, send it back what that decodes
    to; an SDK error is thrown into the flow, which handles it or lets it out."""
    value: Any = None
    error: SectraError | None = None
    try:
        while True:
            op = flow.send(value) if error is None else flow.throw(error)
            try:
                value, error = await client.send(op), None
            except SectraError as exc:
                value, error = None, exc
    except StopIteration as stop:
        return stop.value
    finally:
        flow.close()


class AsyncInvocationContext(_ContextBase):
    """What an ``async def`` handler receives; ``client`` is an :class:`AsyncSectraClient`."""

    client: AsyncSectraClient

    async def image_info(self) -> s.ImageInfo:
        """The slide's metadata (from the notification if it carried it, else fetched once)."""
        if self._info is None:
            self._info = await self.client.get_image_metadata(self.slide_id)
        return self._info

    async def pyramid(self) -> Pyramid:
        """The slide's tile pyramid, for pixel ↔ Sectra coordinates."""
        return Pyramid.from_image_info(await self.image_info())

    async def store(self, result: s.Result) -> s.ResultResponse:
        """Store ``result`` (``create``: a new result; ``modify``: replaces the edited one)."""
        if isinstance(self.invocation, s.ImageNotification):
            return await self.client.create_results(self.application_id, self._prepared(result))
        return await arun_calls(store_flow(self.invocation, result, self.app.app_version, image=self._info), self.client)

    async def start_job(self, work: Any, *, message: str = "Analysis queued", reuse: bool = False) -> s.ResultResponse:
        """Store a "queued" result now, run ``work(job)`` in the background, return the stored
        result (the answer Sectra expects to a ``create``). ``reuse``: update the app's latest
        result on the slide instead of adding one (one invocation per slide at a time)."""
        if not isinstance(self.invocation, (s.CreateInvocation, s.ImageNotification)):
            raise ConfigurationError("background jobs start from create invocations or image notifications")
        stored_runner = isinstance(self._runner, StoredJobRunner)  # a queue: its store may block
        if stored_runner:
            owner = await async_run_blocking(self._running_result, work)
            if owner is not None:
                return await self.client.get_result_by_result_id(self.application_id, owner)
        flow = placeholder_flow(self.invocation, message, app_version=self.app.app_version, reuse=reuse)
        if not reuse:
            stored = await arun_calls(flow, self.client)
            return await async_run_blocking(self._start, stored, work) if stored_runner else self._start(stored, work)
        async with self._async_slide_lock():
            stored = await arun_calls(flow, self.client)
            return await async_run_blocking(self._start, stored, work) if stored_runner else self._start(stored, work)


class AsyncJob(_JobBase):
    """A background job; ``client`` is an :class:`AsyncSectraClient`."""

    client: AsyncSectraClient

    async def image_info(self) -> s.ImageInfo:
        """The slide's metadata (fetched once)."""
        return await arun_calls(self._info_flow(), self.client)

    async def pyramid(self) -> Pyramid:
        """The slide's tile pyramid, for pixel ↔ Sectra coordinates."""
        return Pyramid.from_image_info(await self.image_info())

    async def progress(self, fraction: float, message: str = "Analysis running") -> None:
        """Show progress on the job's result (at most once per :attr:`min_interval`); raises
        :class:`JobCancelled` once a ``cancel`` invocation asked the job to stop, so long loops end."""
        self._check_cancelled()
        fraction = min(max(fraction, 0.0), 1.0)
        if self._due(fraction):
            await arun_calls(self._status_flow(f"{message} ({round(100 * fraction)} %)", fraction), self.client)


async def _quietly(flow: CallFlow[Any], client: AsyncSectraClient) -> None:
    # A job's last word: if even that fails, say so in the log and give up.
    try:
        await arun_calls(flow, client)
    except SectraError as exc:
        log.warning("could not write the job's final status: %s", exc)


async def run_async_job(spec: JobSpec, work: Callable[[AsyncJob], Awaitable[s.Result]]) -> s.ResultResponse | None:
    """Run ``work`` to completion and store its result in place of the job's status result.

    A failure (or :class:`JobCancelled`, or a trio cancellation) replaces the status with one the
    pathologist can read, instead of leaving "running" forever; returns None then. Top-level, so
    process pools can pickle the blocking twin.
    """
    async with AsyncSectraClient(**_client_args(spec)) as client:
        job = AsyncJob(spec, client)
        try:
            async with async_report_cancellation(
                lambda: _quietly(job._status_flow("Analysis cancelled", None), client), FINAL_STATUS_TIMEOUT,
            ):
                return await arun_calls(job._finish_flow(await work(job)), client)
        except JobCancelled:
            text = "Analysis cancelled"
        except Exception as exc:
            _log_failure(spec, exc)
            text = _failure_text(exc)
        finally:
            _forget_cancelled(spec.cancellation_token)
        with async_deadline(FINAL_STATUS_TIMEOUT):
            await _quietly(job._status_flow(text, None), client)
        return None
