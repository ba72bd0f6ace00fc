"""Where the clients read the time and wait (token expiry, retry backoff): the trio clock and the
blocking one. The async sources use the ``Async*`` names; ``scripts/unasync.py`` maps them to the
blocking twins.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from sectra_core.transport import AsyncTransport, SyncTransport

__all__ = ["AsyncClock", "Clock", "AsyncTransportClock", "TransportClock"]


def _trio() -> Any:
    # trio only when an async helper runs: the blocking client (and its generated code) must work
    # without the trio extra installed.
    import trio

    return trio


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
