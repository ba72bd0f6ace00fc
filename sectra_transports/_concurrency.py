"""Running many calls at once, bounded: a trio nursery (async) or a thread pool (blocking); fetching
one window ahead; a blocking call kept off the trio loop. Each ``async_*`` name has a blocking twin
of the plain name, which ``scripts/unasync.py`` substitutes in the generated sources.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

__all__ = [
    "single_errors", "async_run_bounded", "run_bounded", "async_fetch_each", "fetch_each",
    "async_fetch_ahead", "fetch_ahead", "async_run_blocking", "run_blocking",
]


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code) must work
    # without the trio extra installed.
    import trio

    return trio


K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")


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


async def async_run_blocking(fn: Callable[..., V], *args: Any) -> V:
    """``fn(*args)`` in a worker thread, so a blocking call (a queue's storage) leaves the trio
    loop free."""
    result: V = await _trio().to_thread.run_sync(fn, *args)
    return result


def run_blocking(fn: Callable[..., V], *args: Any) -> V:
    """``fn(*args)``: blocking is what the blocking code does anyway."""
    return fn(*args)
