"""Mapping trio, h11 and socket exceptions onto the SDK's tree, at one boundary (principle 11)."""

from __future__ import annotations

import ssl
from typing import Literal

import h11
import trio

from sectra_core import errors

__all__ = ["map_exceptions"]


class _MapExceptions:
    """The context manager :func:`map_exceptions` returns (a class: it wraps every request, and a
    generator-based one costs more than the rest of the transport's own work on a small call)."""

    __slots__ = ("phase", "where")

    def __init__(self, phase: str, where: str | None = None) -> None:
        self.phase = phase
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None:
            return False
        phase = self.phase
        if isinstance(exc, trio.TooSlowError):
            raise errors.TimeoutError(f"{phase} timed out") from exc
        if isinstance(exc, ssl.SSLError):
            raise errors.tls_error(exc, self.where) from exc
        if isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)):
            if isinstance(exc.__cause__, ssl.SSLError):  # trio wraps a failed handshake
                raise errors.tls_error(exc.__cause__, self.where) from exc.__cause__
            raise errors.RemoteProtocolError(f"the server broke the connection: {exc}") from exc
        if isinstance(exc, OSError):
            if phase == "connect":
                raise errors.ConnectError(f"could not connect: {exc}") from exc
            raise errors.RemoteProtocolError(f"network error: {exc}") from exc
        return False


_CONNECT = _MapExceptions("connect")
_READ = _MapExceptions("read")


def map_exceptions(phase: str, where: str | None = None) -> _MapExceptions:
    """Re-raise network failures during ``phase`` ("connect" or "read") as SDK transport errors;
    ``where``: the server's origin, named when it answered plain HTTP to TLS."""
    if where is not None:
        return _MapExceptions(phase, where)
    return _CONNECT if phase == "connect" else _READ if phase == "read" else _MapExceptions(phase)
