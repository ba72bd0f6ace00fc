"""What a transport is, and the options every transport takes (principle 4).

A sync transport has ``handle_request(HttpRequest) -> HttpResponse``, ``close()`` and
``sleep(seconds)``; a trio transport has ``handle_async_request``, ``aclose()`` and
``async sleep``. When the request asks for a stream and the status is 2xx, the response's
``stream`` yields the body in chunks; otherwise ``body`` holds it, or, for an answer too large or
of unknown size to read at once, ``stream`` does and the client reads it within its limits.
Nothing else is required; a
transport may also offer ``HttpResponse.readinto`` for a streamed body, which downloads then use to
fill two reused buffers in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from .errors import ConfigurationError
from .http import HttpRequest, HttpResponse

__all__ = ["TransportOptions", "SyncTransport", "AsyncTransport", "MockTransport", "TransportFactory", "TransportKind"]

#: ``"sync"``: a :class:`SyncTransport` for ``SectraClient``; ``"async"``: an :class:`AsyncTransport`
#: (trio) for ``AsyncSectraClient``.
TransportKind = Literal["sync", "async"]


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Settings every transport honours.

    ``verify``: TLS verification on (True, the default), off (False), or a CA bundle path.
    Timeouts in seconds (Sectra's own examples use 6.05 s connect, 60 s read).
    ``chunk_size``: bytes per streamed chunk. ``pool_size``: connections kept per host; None, the
    transport's own default: 100 on trio (64 requests in flight keep their connections), 16 for
    urllib3 (``fetch_tiles``' 16 threads; urllib3 fills a slot per connection when it makes a pool).
    ``proxy``: an http proxy URL for every request, ``""`` for none, or None (the default) to follow
    ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (see ``sectra_transports._proxy``).
    ``download_buffer``: bytes in each of the two buffers a slide download reads into (the boundary
    scan runs on one while the other fills). Fewer, larger hand-offs to the scanning thread: on a
    16-core machine 4 MiB took the trio client from 1.4x to 1.2x the raw loop's time (issue #18).
    """

    verify: bool | str = True
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    chunk_size: int = 1024 * 1024
    pool_size: int | None = None
    proxy: str | None = field(default=None, repr=False)  # may hold proxy credentials
    download_buffer: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("chunk_size", "download_buffer"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"TransportOptions.{name} must be at least 1 byte")


@runtime_checkable
class SyncTransport(Protocol):
    """A blocking transport."""

    def handle_request(self, request: HttpRequest) -> HttpResponse: ...
    def close(self) -> None: ...
    def sleep(self, seconds: float) -> None: ...


@runtime_checkable
class AsyncTransport(Protocol):
    """A trio transport."""

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse: ...
    async def aclose(self) -> None: ...
    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class TransportFactory:
    """A transport a plugin offers under ``name`` (``sectra_register_transports``).

    ``create(options)`` builds one transport for one client; it is called only for a client that
    names this transport (``transport="name"``), so a plugin may import its HTTP library inside it.
    ``kind`` says which client can use it.
    """

    name: str
    kind: TransportKind
    create: Callable[[TransportOptions], SyncTransport | AsyncTransport] = field(repr=False)


class MockTransport:
    """A sync transport that answers every request with ``handler(request)``, for unit tests.

    When a request asks for a stream, the handler's ``body`` is handed over as one chunk.
    """

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse]) -> None:
        self._handler = handler
        self.requests: list[HttpRequest] = []

    def handle_request(self, request: HttpRequest) -> HttpResponse:
        """Record the request and return the handler's answer."""
        self.requests.append(request)
        response = self._handler(request)
        if request.stream and 200 <= response.status < 300 and response.stream is None:
            response.stream = iter([response.body] if response.body else [])
            response.body = b""
        return response

    def close(self) -> None:
        """Nothing to close."""

    def sleep(self, seconds: float) -> None:
        """Does not sleep: tests run at full speed."""
