"""A download's body, fed to :class:`sectra_core.io.files.Download` (the decoder and file writer):
two buffers take turns, one scanned in a worker thread while the other is written and refilled
(:func:`async_feed_body` for trio, :func:`feed_body` for threads); releasing a response's
connection. The buffers are filled by :mod:`._filler` (and its generated twin :mod:`._filler_sync`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from sectra_core.http import HttpResponse

from ._filler import AsyncFiller
from ._filler_sync import Filler

__all__ = ["async_close_response", "close_response", "async_feed_body", "feed_body"]


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code) must work
    # without the trio extra installed.
    import trio

    return trio


T = TypeVar("T")


async def async_close_response(response: HttpResponse) -> None:
    """Release a trio response's connection (its closer may be a coroutine function)."""
    closer: Any = response.closer
    if closer is not None:
        result = closer()
        if result is not None:
            await result


def close_response(response: HttpResponse) -> None:
    """Release a blocking response's connection."""
    response.close()


async def async_feed_body(
    response: HttpResponse,
    scan: Callable[[bytes | bytearray, int], T],
    save: Callable[[T], None],
    buffer_size: int,
) -> None:
    """Hand a streamed body over chunk by chunk: ``scan(chunk, size)`` decodes a chunk and
    ``save(scanned)`` writes it.

    With ``readinto`` (the trio transport's sized bodies) two buffers of ``buffer_size`` bytes take
    turns, and ``scan`` (a download's boundary scan: pure CPU, no I/O) runs in a trio worker
    thread while this task writes the chunk before and reads the next. So a download costs about
    what reading and writing alone cost (issue #18: scan, write and read in a row were 1.6x the raw
    loop's time on 16 cores). ``save`` and the reads stay in the calling task, so do progress
    reports. No thread outlives the call: on an error or a cancellation the scan under way is
    finished first.
    """
    readinto: Any = response.readinto
    if readinto is None:
        async for chunk in response.stream:  # type: ignore[union-attr]
            save(scan(chunk, len(chunk)))
        return
    scanning, free = bytearray(buffer_size), bytearray(buffer_size)
    fill = AsyncFiller(readinto)
    job: _AsyncThreadCall | None = None
    try:
        n = await fill.fill(scanning)
        job = _AsyncThreadCall(scan, scanning, n) if n else None
        while job is not None:
            try:
                n = await fill.fill(free)
            except Exception:
                # The chunk before still counts (a cut names the file it cut): save it, then fail.
                save(await job.result())
                raise
            scanned = await job.result()
            scanning, free = free, scanning
            job = _AsyncThreadCall(scan, scanning, n) if n else None  # scans while we write
            save(scanned)
    finally:
        if job is not None:
            await job.finished()


class _AsyncThreadCall:
    """``fn(*args)`` started at once in a trio worker thread, awaited later (``to_thread.run_sync``
    starts and waits in one step, so nothing could overlap it)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        trio = _trio()
        self._done = trio.Event()
        self._outcome: Any = None
        token = trio.lowlevel.current_trio_token()

        def deliver(outcome: Any) -> None:
            self._outcome = outcome
            token.run_sync_soon(self._done.set)

        trio.lowlevel.start_thread_soon(lambda: fn(*args), deliver, name="sectra-download-scan")

    async def result(self) -> Any:
        """Wait for the call (cancellable: :meth:`finished` then waits out the thread); its result."""
        await self._done.wait()
        return self._outcome.unwrap()

    async def finished(self) -> None:
        """Wait until the thread is done, even under cancellation (it reads our buffer)."""
        with _trio().CancelScope(shield=True):
            await self._done.wait()


def feed_body(
    response: HttpResponse,
    scan: Callable[[bytes | bytearray, int], T],
    save: Callable[[T], None],
    buffer_size: int,
) -> None:
    """As :func:`async_feed_body`; with ``readinto`` (a transport that offers it: the built-in urllib3
    transport streams urllib3's chunks instead, scanned in this thread) the two buffers are refilled, and ``scan`` runs in one worker thread while this thread writes the chunk
    before and reads the next (the socket and the disk release the interpreter lock; the scan
    would otherwise wait for both)."""
    readinto: Any = response.readinto
    if readinto is None:
        for chunk in response.stream:  # type: ignore[union-attr]
            save(scan(chunk, len(chunk)))
        return
    scanning, free = bytearray(buffer_size), bytearray(buffer_size)
    fill = Filler(readinto)
    # shutdown(wait=True) on the way out: no thread outlives the call, whatever ends it.
    with ThreadPoolExecutor(1, thread_name_prefix="sectra-download-scan") as scanner:
        n = fill.fill(scanning)
        job: Future[T] | None = scanner.submit(scan, scanning, n) if n else None
        while job is not None:
            try:
                n = fill.fill(free)
            except Exception:
                save(job.result())  # as in async_feed_body
                raise
            scanned = job.result()
            scanning, free = free, scanning
            job = scanner.submit(scan, scanning, n) if n else None
            save(scanned)
