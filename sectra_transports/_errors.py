"""Mapping urllib3's exceptions onto the SDK's tree, at one boundary (principle 11)."""

from __future__ import annotations

import ssl
from typing import Literal

import urllib3.exceptions as u
import urllib3.util

from sectra_core import errors

__all__ = ["map_exceptions"]


def _convert(exc: BaseException, where: str | None = None) -> errors.TransportError:
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
        return errors.tls_error(cause, where)
    if isinstance(exc, (u.ProtocolError, u.DecodeError, u.ResponseError)):
        return errors.RemoteProtocolError(f"the server broke the connection: {exc}")
    return errors.TransportError(f"{type(exc).__name__}: {exc}")


class _MapExceptions:
    """Re-raise urllib3 (and raw socket) failures as :class:`sectra_core.errors.TransportError`.

    A class, not a ``@contextmanager`` generator: it wraps every request, and entering and leaving
    a generator-based one costs more than the rest of this transport's own work on a small call.
    """

    __slots__ = ("url",)

    def __init__(self, url: str | None = None) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, u.MaxRetryError):
            pool = getattr(exc, "pool", None)  # public on MaxRetryError: names the server, not the path
            where = f"{pool.scheme}://{pool.host}:{pool.port}" if pool is not None else _origin(self.url)
            raise _convert(exc.reason or exc, where) from exc.reason
        if isinstance(exc, u.HTTPError):
            raise _convert(exc, _origin(self.url)) from exc
        if isinstance(exc, OSError):
            raise errors.ConnectError(f"network error: {exc}") from exc
        return False


_MAP = _MapExceptions()


def _origin(url: str | None) -> str | None:
    # Scheme, host and port only: a request's path and query may hold an accession number.
    if url is None:
        return None
    parts = urllib3.util.parse_url(url)
    return f"{parts.scheme}://{parts.host}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def map_exceptions(url: str | None = None) -> _MapExceptions:
    """Re-raise urllib3 (and raw socket) failures as :class:`sectra_core.errors.TransportError`;
    ``url``: the request's, whose origin is named when the server answered plain HTTP to TLS."""
    return _MAP if url is None else _MapExceptions(url)
