"""What an app's handler receives: the invocation, a ready client, and helpers that do it right.

``async def`` handlers get an :class:`AsyncInvocationContext` (trio client); plain ``def``
handlers get an :class:`InvocationContext` (sync client, run in a worker thread). The helpers are
the core's call flows (:mod:`sectra_core.jobs`) driven by the matching client.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import trio

from sectra_core import schemas as s
from sectra_core.analysis_app import AnalysisApp
from sectra_core.errors import ConfigurationError
from sectra_core.geometry import Pyramid
from sectra_core.jobs import JobRunner, job_spec, placeholder_flow, prepare_result, store_flow

from ._calls import arun_calls, run_calls

__all__ = ["InvocationContext", "AsyncInvocationContext", "SlideLocks"]

Message = s.Invocation | s.ImageNotification
_Key = tuple[str, str]


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
        return prepare_result(result, self.slide_id, self.app.app_version)

    @property
    def _slide_key(self) -> _Key:
        return (self.application_id, self.slide_id)

    def _running_result(self, work: Any) -> int | str | None:
        # A queue runner answers a duplicate invocation with the result of the job already queued
        # or running for this slide and work, instead of starting a second one (issue #16).
        claim = getattr(self._runner, "claim", None)
        return None if claim is None else claim(self.application_id, self.slide_id, work)

    def _start(self, stored: s.ResultResponse, work: Any) -> s.ResultResponse:
        if not isinstance(self.invocation, (s.CreateInvocation, s.ImageNotification)):
            raise ConfigurationError("background jobs start from create invocations or image notifications")
        spec = job_spec(self.invocation, stored, app_version=self.app.app_version, client_options=self.app.client_options)
        self._runner_now().submit(spec, work)
        return stored


class AsyncInvocationContext(_ContextBase):
    """For ``async def`` handlers; ``client`` is an :class:`AsyncSectraClient`."""

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
        return await arun_calls(store_flow(self.invocation, result, self.app.app_version), self.client)

    async def start_job(self, work: Any, *, message: str = "Analysis queued", reuse: bool = False) -> s.ResultResponse:
        """Store a "queued" result now, run ``work(job)`` in the background, return the stored
        result (the answer Sectra expects to a ``create``). ``reuse``: update the app's latest
        result on the slide instead of adding one."""
        owner = None if getattr(self._runner, "claim", None) is None else await trio.to_thread.run_sync(self._running_result, work)
        if owner is not None:
            return await self.client.get_result_by_result_id(self.application_id, owner)
        flow = placeholder_flow(self.invocation, message, app_version=self.app.app_version, reuse=reuse)  # type: ignore[arg-type]
        if not reuse:
            return self._start(await arun_calls(flow, self.client), work)
        async with self._locks.hold(self._slide_key):
            return self._start(await arun_calls(flow, self.client), work)


class InvocationContext(_ContextBase):
    """For plain ``def`` handlers (run in a worker thread); ``client`` is a :class:`SectraClient`."""

    def image_info(self) -> s.ImageInfo:
        """The slide's metadata (from the notification if it carried it, else fetched once)."""
        if self._info is None:
            self._info = self.client.get_image_metadata(self.slide_id)
        return self._info

    def pyramid(self) -> Pyramid:
        """The slide's tile pyramid, for pixel ↔ Sectra coordinates."""
        return Pyramid.from_image_info(self.image_info())

    def store(self, result: s.Result) -> s.ResultResponse:
        """Store ``result`` (``create``: a new result; ``modify``: replaces the edited one)."""
        if isinstance(self.invocation, s.ImageNotification):
            return self.client.create_results(self.application_id, self._prepared(result))
        return run_calls(store_flow(self.invocation, result, self.app.app_version), self.client)

    def start_job(self, work: Any, *, message: str = "Analysis queued", reuse: bool = False) -> s.ResultResponse:
        """See :meth:`AsyncInvocationContext.start_job`; ``work`` must be a plain function."""
        owner = self._running_result(work)
        if owner is not None:
            return self.client.get_result_by_result_id(self.application_id, owner)
        flow = placeholder_flow(self.invocation, message, app_version=self.app.app_version, reuse=reuse)  # type: ignore[arg-type]
        if not reuse:
            return self._start(run_calls(flow, self.client), work)
        with self._locks.hold_sync(self._slide_key, self._trio_token):
            return self._start(run_calls(flow, self.client), work)
