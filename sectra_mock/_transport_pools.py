"""Transports for the mock's calls to apps (the mock playing Sectra): trio transports made per use,
urllib3 transports pooled by read timeout."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sectra_core.transport import AsyncTransport, SyncTransport, TransportOptions

__all__ = ["AsyncTransportPool", "TransportPool"]



class AsyncTransportPool:
    """Trio transports by read timeout, one per use: a trio socket belongs to the run that opened it,
    and the mock's trio calls may come from many runs."""

    def __init__(self, refusal: str = "") -> None:
        self._refusal = refusal

    @asynccontextmanager
    async def transport(self, timeout: float) -> AsyncIterator[AsyncTransport]:
        """A transport with ``timeout`` as its read timeout, closed after the block."""
        from sectra_transports.trio import TrioTransport

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
        from sectra_transports.urllib3 import Urllib3Transport

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
