"""Everything that differs between the trio code and the blocking code, in one small module.

The async sources (``_async.py``, ``_async_app.py``, ``sectra_mock/_caller_async.py``) are written
once, against the ``Async*`` / ``async_*`` names here; ``scripts/unasync.py`` generates the blocking
twins by swapping each for its plain name (``AsyncLock`` -> ``Lock``, ``async_run_bounded`` ->
``run_bounded``). So where trio and threads must differ (a nursery with a ``CapacityLimiter`` vs a
thread pool, a trio lock vs a thread lock, ``trio.current_time`` vs ``time.monotonic``), the
difference lives here and not in a generated file (after httpcore's ``_synchronization.py``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar


from sectra_core.http import HttpResponse
from sectra_core.plugins import Plugins
from sectra_core.transport import AsyncTransport, SyncTransport, TransportOptions

from ._filler import AsyncFiller
from ._filler_sync import Filler

if TYPE_CHECKING:
    import trio


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code, which
    # imports this module) must work without the trio extra installed.
    import trio

    return trio

__all__ = [
    "AsyncClock",
    "Clock",
    "AsyncTransportClock",
    "TransportClock",
    "AsyncLock",
    "Lock",
    "async_run_bounded",
    "run_bounded",
    "async_fetch_each",
    "fetch_each",
    "async_fetch_ahead",
    "fetch_ahead",
    "async_close_response",
    "close_response",
    "async_feed_body",
    "feed_body",
    "async_run_blocking",
    "run_blocking",
    "single_errors",
    "async_deadline",
    "deadline",
    "async_report_cancellation",
    "report_cancellation",
    "AsyncTransportPool",
    "TransportPool",
]

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

# --- clocks ---------------------------------------------------------------------------------------


class AsyncClock(Protocol):
    """What the trio client reads the time from and waits with (token expiry, retry backoff).

    ``now()`` is monotonic seconds. Under trio's ``MockClock`` (pytest-trio's ``autojump_clock``)
    the default clock jumps with it, so tests need no wall-clock waits.
    """

    def now(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...


class Clock(Protocol):
    """What the blocking client reads the time from and waits with; tests pass a fake one."""

    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class AsyncTransportClock:
    """The default trio clock: ``trio.current_time`` and the transport's ``sleep``."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport

    def now(self) -> float:
        """Trio's clock (a ``MockClock`` in tests)."""
        return _trio().current_time()

    async def sleep(self, seconds: float) -> None:
        """The transport's sleep (``trio.sleep`` for the trio transport)."""
        await self._transport.sleep(seconds)


class TransportClock:
    """The default blocking clock: ``time.monotonic`` and the transport's ``sleep``
    (:class:`~sectra_core.transport.MockTransport` does not sleep)."""

    def __init__(self, transport: SyncTransport) -> None:
        self._transport = transport

    def now(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        """The transport's sleep (``time.sleep`` for urllib3)."""
        self._transport.sleep(seconds)


# --- locks ----------------------------------------------------------------------------------------


class AsyncLock:
    """A trio lock, for tasks of one trio run."""

    def __init__(self) -> None:
        self._lock = _trio().Lock()

    async def __aenter__(self) -> AsyncLock:
        await self._lock.acquire()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class Lock:
    """A thread lock, for threads sharing one blocking client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> Lock:
        self._lock.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self._lock.release()


# --- bounded concurrency --------------------------------------------------------------------------


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


@contextmanager
def single_errors() -> Iterator[None]:
    """Let a nursery's lone failure out as itself: that we use a nursery is not the caller's business."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = list(_leaves(group))
        if len(leaves) == 1:
            raise leaves[0] from leaves[0].__cause__
        raise


async def async_run_bounded(
    fn: Callable[[K], Awaitable[V]], items: Iterable[K], limit: int, name: str,
) -> list[V]:
    """``[await fn(item) for item in items]`` with at most ``limit`` running at once, in a nursery
    this call owns; the first failure cancels the rest and is raised as itself (not as a group)."""
    if limit < 1:
        raise ValueError(f"{name}: at most {limit} at once runs nothing; give 1 or more")
    keys = list(items)
    results: list[Any] = [None] * len(keys)
    todo = iter(enumerate(keys))
    trio = _trio()

    # ``limit`` workers taking the next item as each finishes: a task per item, each queued on a
    # CapacityLimiter, cost more than the request itself for a small tile (issue #18).
    async def worker() -> None:
        for index, item in todo:
            results[index] = await fn(item)

    with single_errors():
        async with trio.open_nursery() as nursery:
            for number in range(min(limit, len(keys))):
                nursery.start_soon(worker, name=f"{name}-{number}")
    return results


def run_bounded(fn: Callable[[K], V], items: Iterable[K], limit: int, name: str) -> list[V]:
    """``[fn(item) for item in items]`` on a thread pool of ``limit`` threads named ``name``; the
    first failure (in order) is raised once the calls in flight finish, and the queued ones never
    start."""
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name) as pool:
        return list(pool.map(fn, items))


def _then_threads(limit: int) -> int:
    # The CPU-bound step gets a thread per core, not one per request in flight: more only queue for
    # the interpreter lock between Pillow's GIL-free stretches (measured: client CPU per 4096² region).
    return max(1, min(limit, os.cpu_count() or 1))


async def async_fetch_each(
    fetch: Callable[[K], Awaitable[V]], then: Callable[[K, V], None], items: Iterable[K], limit: int, name: str,
) -> None:
    """For each item, ``then(item, await fetch(item))``: at most ``limit`` fetches in flight (a
    ``CapacityLimiter`` in a nursery this call owns) and each ``then`` in a worker thread
    (``trio.to_thread``, one per core at most) as soon as its fetch is done, outside the fetch
    limiter, so the next fetch starts while it runs. ``then`` is the CPU-bound part (a tile's
    decode), kept off the event loop; it must be thread-safe. The first failure cancels the rest
    and is raised as itself."""
    trio = _trio()
    limiter = trio.CapacityLimiter(limit)
    workers = trio.CapacityLimiter(_then_threads(limit))

    async def one(item: K) -> None:
        async with limiter:
            fetched = await fetch(item)
        await trio.to_thread.run_sync(then, item, fetched, limiter=workers)

    with single_errors():
        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                nursery.start_soon(one, item, name=f"{name}-{index}")


def fetch_each(fetch: Callable[[K], V], then: Callable[[K, V], None], items: Iterable[K], limit: int, name: str) -> None:
    """As :func:`async_fetch_each` with threads: ``limit`` threads named ``name`` fetch, each handing
    what it fetched to a small pool (one thread per core) that runs ``then`` while it fetches the
    next. The first failure (in order) is raised once the calls in flight finish; fetches not yet
    started never start."""
    failed: list[BaseException] = []

    def run_then(item: K, fetched: V) -> None:
        try:
            then(item, fetched)
        except BaseException as exc:
            failed.append(exc)
            raise

    with ThreadPoolExecutor(max_workers=_then_threads(limit), thread_name_prefix=f"{name}-then") as after:
        def one(item: K) -> Future[None]:
            if failed:  # a `then` failed: start no more fetches
                raise failed[0]
            return after.submit(run_then, item, fetch(item))

        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=name) as pool:
            handed = list(pool.map(one, items))  # the first fetch failure is raised here
        for future in handed:
            future.result()  # the first `then` failure is raised here


def async_fetch_ahead(
    fetch: Callable[[K], Awaitable[V]], windows: Sequence[K], emit: Callable[[K, V], Iterable[T]],
) -> AbstractAsyncContextManager[AsyncIterator[T]]:
    """``async with`` it: the items ``emit(window, await fetch(window))`` gives, window after window,
    with the next window fetched while the caller works through this one's items (one window ahead,
    so memory holds two at most).

    The fetcher is a task in a nursery that lives inside the ``async with``, handing each window
    over a zero-buffer memory channel (it waits there until the caller has finished the window
    before); ``trio.as_safe_channel`` keeps the nursery out of the caller's iteration (PEP 789)
    and leaving the block early cancels the fetch in flight. Lone failures come out as themselves.
    """
    trio = _trio()

    @trio.as_safe_channel
    async def items() -> AsyncIterator[T]:
        send, receive = trio.open_memory_channel(0)

        async def fetch_windows() -> None:
            async with send:
                for window in windows:
                    fetched = await fetch(window)
                    await send.send((window, fetched))  # waits until the caller is done with the last window

        with single_errors():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch_windows, name="sectra-fetch-ahead")
                async with receive:
                    async for window, fetched in receive:
                        for item in emit(window, fetched):
                            yield item

    return items()


@contextmanager
def fetch_ahead(
    fetch: Callable[[K], V], windows: Sequence[K], emit: Callable[[K, V], Iterable[T]],
) -> Iterator[Iterator[T]]:
    """As :func:`async_fetch_ahead` for threads: ``with`` it, the items ``emit(window, fetch(window))``
    gives, the next window fetched by one helper thread while the caller works through this one's.
    Leaving the block early drops the window queued ahead or, where it is already being fetched,
    waits for that fetch (a thread cannot be interrupted), so nothing outlives the block."""

    def items(ahead: ThreadPoolExecutor) -> Generator[T, None, None]:
        pending: Future[V] | None = ahead.submit(fetch, windows[0]) if windows else None
        for n, window in enumerate(windows):
            assert pending is not None
            fetched = pending.result()
            pending = ahead.submit(fetch, windows[n + 1]) if n + 1 < len(windows) else None
            yield from emit(window, fetched)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sectra-fetch-ahead") as ahead:
        iterator = items(ahead)
        try:
            yield iterator
        finally:
            iterator.close()
            ahead.shutdown(wait=True, cancel_futures=True)


# --- response bodies ------------------------------------------------------------------------------


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
    """As :func:`async_feed_body`; with ``readinto`` (urllib3) the two buffers are refilled straight
    from the socket, and ``scan`` runs in one worker thread while this thread writes the chunk
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


# --- blocking calls ---------------------------------------------------------------------------------


async def async_run_blocking(fn: Callable[..., V], *args: Any) -> V:
    """``fn(*args)`` in a worker thread, so a blocking call (a queue's storage) leaves the trio
    loop free."""
    result: V = await _trio().to_thread.run_sync(fn, *args)
    return result


def run_blocking(fn: Callable[..., V], *args: Any) -> V:
    """``fn(*args)``: blocking is what the blocking code does anyway."""
    return fn(*args)


# --- cancellation ---------------------------------------------------------------------------------


def async_deadline(seconds: float) -> AbstractContextManager[Any]:
    """Give up on the block after ``seconds`` (a trio cancel scope)."""
    return _trio().move_on_after(seconds)


def deadline(seconds: float) -> AbstractContextManager[Any]:
    """Nothing: a thread cannot be interrupted; the blocking client's own timeouts bound the block."""
    return nullcontext()


@asynccontextmanager
async def async_report_cancellation(report: Callable[[], Awaitable[None]], seconds: float) -> AsyncIterator[None]:
    """When the block is cancelled (trio), run ``report`` shielded for at most ``seconds``, then
    let the cancellation go on: a cancelled job still leaves a status the pathologist can read."""
    trio = _trio()
    try:
        yield
    except trio.Cancelled:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + seconds
            await report()
        raise


@contextmanager
def report_cancellation(report: Callable[[], None], seconds: float) -> Iterator[None]:
    """Nothing to do: a thread is not cancelled from outside (jobs see :class:`JobCancelled` instead)."""
    yield


# --- transports for calls to apps (the mock playing Sectra) ---------------------------------------


class AsyncTransportPool:
    """Trio transports by read timeout, one per use: a trio socket belongs to the run that opened it,
    and the mock's trio calls may come from many runs."""

    def __init__(self, refusal: str = "") -> None:
        self._refusal = refusal

    @asynccontextmanager
    async def transport(self, timeout: float) -> AsyncIterator[AsyncTransport]:
        """A transport with ``timeout`` as its read timeout, closed after the block."""
        from ._trio_transport import TrioTransport

        async with TrioTransport(TransportOptions(read_timeout=timeout)) as transport:
            yield transport

    async def aclose(self) -> None:
        """Nothing is kept between uses."""


class TransportPool:
    """urllib3 transports by read timeout, kept for reuse until :meth:`close`.

    ``refusal``: the error raised when used from a trio task, where a blocking call would freeze
    the very event loop that serves the other side (a deadlock, not a slow test).
    """

    def __init__(self, refusal: str = "") -> None:
        self._refusal = refusal
        self._transports: dict[float, SyncTransport] = {}
        self._guard = threading.Lock()

    @contextmanager
    def transport(self, timeout: float) -> Iterator[SyncTransport]:
        """A pooled transport with ``timeout`` as its read timeout."""
        from sectra_core.errors import ConfigurationError

        from ._urllib3_transport import Urllib3Transport

        try:
            import trio

            trio.lowlevel.current_task()
        except (ImportError, RuntimeError):
            pass  # not in trio (or no trio at all): blocking is fine
        else:
            raise ConfigurationError(self._refusal or "a blocking call inside a trio task would deadlock")
        with self._guard:
            transport = self._transports.get(timeout)
            if transport is None:
                transport = self._transports[timeout] = Urllib3Transport(TransportOptions(read_timeout=timeout, pool_size=4))
        yield transport

    def close(self) -> None:
        """Drop pooled connections."""
        with self._guard:
            transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            transport.close()
