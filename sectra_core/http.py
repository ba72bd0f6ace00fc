"""Protocol-neutral HTTP messages passed between the core and the transports.

The core builds :class:`HttpRequest` values and reads :class:`HttpResponse` values; it never opens
a socket. Transports turn one into the other (principle 4).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "Headers",
    "ERROR_BODY_LIMIT",
    "redact_headers",
    "keep_streaming",
    "read_limit",
]

Headers = Mapping[str, str]

#: How much of a streamed response with an error status is read for the error message.
ERROR_BODY_LIMIT = 64 * 1024

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def redact_headers(headers: Headers) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced, safe to log."""
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request, as data.

    ``stream`` asks the transport to hand the body over as chunks instead of reading it whole
    (slide files). ``idempotent`` tells retry logic whether repeating it is safe.
    """

    method: str
    url: str
    headers: Headers = field(default_factory=dict)
    body: bytes | None = None
    stream: bool = False
    idempotent: bool = True

    @property
    def path(self) -> str:
        """The URL path without scheme, host or query: what error messages show."""
        return urlsplit(self.url).path

    def __repr__(self) -> str:
        # Never the query string (it can hold a session token, spec §4.3) nor the headers.
        return f"HttpRequest({self.method} {self.path})"


@dataclass(slots=True)
class HttpResponse:
    """One HTTP response.

    ``headers`` has lower-case names. ``body`` holds the whole body unless the request asked for a
    stream and the status is 2xx; then ``stream`` yields the chunks (an async iterator on trio) and
    ``body`` is empty. Call ``close`` (or exhaust the stream) to give the connection back.

    A sync transport may also offer ``readinto(buffer) -> int``: it fills the caller's buffer from
    the same body (0 at its end) and raises the SDK's transport errors, like ``stream``. Reading
    a whole slide into one reused buffer saves an allocation per chunk and keeps the bytes in
    the CPU cache while they are scanned and written. Use either ``stream`` or ``readinto``.
    """

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: Iterator[bytes] | AsyncIterator[bytes] | None = None
    closer: Any = None
    readinto: Callable[[bytearray], int] | None = None

    def close(self) -> None:
        """Give the connection back (or drop it, if the body was not read to the end)."""
        if self.closer is not None:
            self.closer()

    def header(self, name: str, default: str = "") -> str:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, body={len(self.body)} bytes, streamed={self.stream is not None})"


def keep_streaming(request: HttpRequest, status: int) -> bool:
    """Whether a driver hands a response over as a stream (True) or reads its body first (False).

    Error answers are read (up to :data:`ERROR_BODY_LIMIT`) so the error message can quote them.
    """
    return request.stream and 200 <= status < 300


def read_limit(request: HttpRequest) -> int | None:
    """How much of a non-streamed body a driver reads: all of it, or an error excerpt for streams."""
    return ERROR_BODY_LIMIT if request.stream else None
