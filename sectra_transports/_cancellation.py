"""Giving up on a block after a while, and reporting a cancellation before it goes on: trio cancel
scopes (async); no-ops for threads, which are not cancelled from outside.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager, nullcontext
from typing import Any

__all__ = ["async_deadline", "deadline", "async_report_cancellation", "report_cancellation"]


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code) must work
    # without the trio extra installed.
    import trio

    return trio


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
