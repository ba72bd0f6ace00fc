"""Filling a download's buffers from a response's ``readinto``, for the download pipeline of
:mod:`._feed`.

Written once, for trio; ``scripts/unasync.py`` generates :mod:`._filler_sync` (the blocking
``Filler``) from it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncFiller"]


class AsyncFiller:
    """Fills a download's buffers from ``readinto``: on a fast link a buffer is filled whole (one
    hand-off to the scanning thread per buffer, however the socket's reads fall); a read that
    brings little means a slow link, and what came is handed on at once, so progress keeps coming.
    An error after some bytes of a buffer is raised by the next fill: the bytes before a cut are
    still saved, and the error names the file it cut."""

    #: A read at least this large: more is probably waiting in the socket.
    FAST = 64 * 1024

    def __init__(self, readinto: Any) -> None:
        self._readinto = readinto
        self._error: Exception | None = None
        self._ended = False

    async def fill(self, buffer: bytearray) -> int:
        """Fill ``buffer``; the number of bytes, 0 at the body's end."""
        if self._error is not None or self._ended:
            return self._stop()
        n = 0
        try:
            n = more = await self._readinto(buffer)
            if more >= self.FAST:
                view = memoryview(buffer)
                while n < len(buffer):
                    more = await self._readinto(view[n:])
                    n += more
                    if more < self.FAST:
                        break
        except Exception as exc:  # not a cancellation or Ctrl-C: those stop at once
            return self._failed(exc, n)
        self._ended = not more
        return n

    def _failed(self, exc: Exception, n: int) -> int:
        if not n:
            raise exc
        self._error = exc
        return n

    def _stop(self) -> int:
        if self._error is not None:
            raise self._error
        return 0
