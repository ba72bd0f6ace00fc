"""A lock for the tasks of one trio run (:class:`AsyncLock`) and its blocking twin for threads
(:class:`Lock`).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

__all__ = ["AsyncLock", "Lock"]


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code) must work
    # without the trio extra installed.
    import trio

    return trio


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
