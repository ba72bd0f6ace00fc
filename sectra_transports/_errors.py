"""Mapping urllib3's exceptions onto the SDK's tree, at one boundary (principle 11)."""

from __future__ import annotations

import ssl
from typing import Literal

import urllib3.exceptions as u

from sectra_core import errors

__all__ = ["map_exceptions"]


def _convert(exc: BaseException) -> errors.TransportError:
    # urllib3 messages name host and port but not the query string; the MaxRetryError wrapper
    # (which quotes the full URL) is unwrapped before we get here.
    # NewConnectionError subclasses ConnectTimeoutError in urllib3, so it is tested first.
    if isinstance(exc, u.ProxyError):
        reason = exc.original_error or exc
        hint = " (it wants credentials: put user:password@ in the proxy URL)" if "407" in str(reason) else ""
        return errors.ConnectError(f"the proxy failed: {reason}{hint}")
    if isinstance(exc, (u.NewConnectionError, u.NameResolutionError)):
        return errors.ConnectError(f"could not connect: {exc}")
    if isinstance(exc, u.ConnectTimeoutError):
        return errors.TimeoutError(f"connect timed out: {exc}")
    if isinstance(exc, u.TimeoutError):
        return errors.TimeoutError(f"read timed out: {exc}")
    if isinstance(exc, u.SSLError):
        # urllib3 keeps the ssl module's exception as its argument (and, in 2.x, as the cause).
        cause = next((a for a in (*exc.args, exc.__cause__) if isinstance(a, ssl.SSLError)), exc)
        return errors.tls_error(cause)
    if isinstance(exc, (u.ProtocolError, u.DecodeError, u.ResponseError)):
        return errors.RemoteProtocolError(f"the server broke the connection: {exc}")
    return errors.TransportError(f"{type(exc).__name__}: {exc}")


class _MapExceptions:
    """Re-raise urllib3 (and raw socket) failures as :class:`sectra_core.errors.TransportError`.

    A class, not a ``@contextmanager`` generator: it wraps every request, and entering and leaving
    a generator-based one costs more than the rest of this transport's own work on a small call.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, u.MaxRetryError):
            raise _convert(exc.reason or exc) from exc.reason
        if isinstance(exc, u.HTTPError):
            raise _convert(exc) from exc
        if isinstance(exc, OSError):
            raise errors.ConnectError(f"network error: {exc}") from exc
        return False


_MAP = _MapExceptions()


def map_exceptions() -> _MapExceptions:
    """Re-raise urllib3 (and raw socket) failures as :class:`sectra_core.errors.TransportError`."""
    return _MAP
