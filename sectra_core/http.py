"""Protocol-neutral HTTP messages passed between the core and the transports.

The core builds :class:`HttpRequest` values and reads :class:`HttpResponse` values; it never opens
a socket. Transports turn one into the other (principle 4).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from .config import env_limit
from .errors import ConfigurationError, DecodeError, ResponseTooLargeError
from .headers import content_encoding, digits

__all__ = [
    "Upload",
    "HttpRequest",
    "HttpResponse",
    "Headers",
    "ERROR_BODY_LIMIT",
    "ResponseLimits",
    "BodyReader",
    "check_whole_body",
    "redact_headers",
    "check_header",
    "send_headers",
    "keep_streaming",
    "split_origin",
    "EAGER_BODY_BYTES",
]

Headers = Mapping[str, str]

#: How much of a response with an error status is read: errors quote at most an excerpt of it.
ERROR_BODY_LIMIT = 64 * 1024

MiB = 1024 * 1024

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def redact_headers(headers: Headers) -> dict[str, str]:
    """A copy of ``headers`` with credentials replaced, safe to log."""
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


# What may stand in a request target unescaped (RFC 3986 §3.3 pchar, §3.4 query; "%" so that
# escapes already made stay as they are). Everything else (space, controls, non-ASCII, '"<>\\^`{|}')
# is percent-encoded, as urllib3 does on its own and h11 (trio) refuses to: both send the same.
_PATH_SAFE = "/%:@!$&'()*+,;=~"
_QUERY_SAFE = _PATH_SAFE + "?"
_TARGET_OK = re.compile(r"[A-Za-z0-9\-._~/%:@!$&'()*+,;=?]*")
_NETLOC_OK = re.compile(r"[A-Za-z0-9\-._~:%\[\]]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A URL that the checks below would pass unchanged: http(s), a plain host, a path and query of
# characters a target may hold as they are, no fragment.
_PLAIN_URL = re.compile(r"https?://[A-Za-z0-9\-._~:%\[\]]+(?:/[A-Za-z0-9\-._~/%:@!$&'()*+,;=]*)?(?:\?[A-Za-z0-9\-._~/%:@!$&'()*+,;=?]*)?")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a header name (RFC 9110 §5.1)
# A header value (RFC 9110 §5.5), ASCII only: h11 encodes values as ASCII, http.client as latin-1.
_VALUE_OK = re.compile(r"(?:[\x21-\x7e](?:[\t\x20-\x7e]*[\x21-\x7e])?)?")


def _request_url(url: str) -> str:
    """``url`` with its path and query percent-encoded where a request target needs it.

    The one place where request targets are made valid, so both transports send the same bytes.
    A host that is no host name or address is a :class:`ConfigurationError`.
    """
    if _PLAIN_URL.fullmatch(url):
        return url  # the common case, decided in one match: nothing to check further or to escape
    if _CONTROL.search(url):
        # urlsplit silently drops tabs and line breaks; a control character is never meant.
        raise ConfigurationError("the request URL holds a control character (a line break, a tab)")
    parts = urlsplit(url)
    if not _NETLOC_OK.fullmatch(parts.netloc):
        raise ConfigurationError(
            "the request URL's host holds characters no host name has (a space, a control or "
            "non-ASCII character, user-info); check the IA-API base URL"
        )
    if _TARGET_OK.fullmatch(parts.path) and _TARGET_OK.fullmatch(parts.query) and not parts.fragment:
        return url
    path = quote(parts.path, safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def check_header(name: str, value: str) -> None:
    """:class:`ConfigurationError` naming the header unless both transports can send it as is.

    h11 raises its own LocalProtocolError and http.client a bare ValueError for these.
    """
    if not _TOKEN.fullmatch(name):
        raise ConfigurationError(f"{name!r} is not a valid HTTP header name")
    if not _VALUE_OK.fullmatch(value):
        raise ConfigurationError(
            f"the {name} header value holds a line break, a control or non-ASCII character, "
            "or space at its ends; it cannot be sent"
        )


_STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

#: Header fields already found sendable (name, value): checked once, not on every request.
_CHECKED_HEADERS: set[tuple[str, str]] = set()
#: The same for credentials (the bearer header, on every request), kept only as salted hashes
#: (``hash`` of a str is keyed per process): no token stays in a module-level set.
_CHECKED_SECRETS: set[int] = set()


def _check_new_header(item: tuple[str, str]) -> None:
    """:func:`check_header` for a field not in :data:`_CHECKED_HEADERS`, remembering it if it passes."""
    if item[0].lower() in _SECRET_HEADERS:
        key = hash(item)
        if key not in _CHECKED_SECRETS:
            check_header(*item)
            if len(_CHECKED_SECRETS) < 512:
                _CHECKED_SECRETS.add(key)
        return
    check_header(*item)
    # The same few fields on every request of a client.
    if len(_CHECKED_HEADERS) < 512:
        _CHECKED_HEADERS.add(item)


class Upload(Protocol):
    """A request body made while it is sent (:attr:`HttpRequest.upload`)."""

    @property
    def length(self) -> int: ...
    def chunks(self) -> Iterator[bytes]: ...


class HttpRequest(msgspec.Struct, frozen=True):
    """One HTTP request, as data.

    ``stream`` asks the transport to hand the body over as chunks instead of reading it whole
    (slide files). ``idempotent`` tells retry logic whether repeating it is safe. ``route`` is
    the endpoint's path template (``/slides/{slide_id}/info``): logs and error messages show it
    instead of the path, which can hold an accession number (spec §4.5) or, in the query, a
    session token (spec §4.3). ``binary``: the answer is raw bytes (a tile, label or attachment),
    capped by :attr:`ResponseLimits.binary_bytes` instead of ``json_bytes``.

    The URL is percent-encoded where a request target needs it; a header name or value that
    cannot be sent (a line break, a control character) is a :class:`ConfigurationError`.
    """

    # A frozen msgspec Struct, not a frozen dataclass: one is built per call, and a frozen
    # dataclass's __init__ (a object.__setattr__ call per field) cost more than the rest of the
    # request's building (issue #18).
    method: str
    url: str
    headers: Headers = {}
    body: bytes | None = None
    stream: bool = False
    idempotent: bool = True
    route: str = ""
    binary: bool = False
    #: A body sent in chunks instead of ``body`` (a STOW-RS upload): an object with ``length``
    #: (bytes, sent as Content-Length) and ``chunks()`` (a fresh iterator of bytes per try).
    upload: Upload | None = None

    def __post_init__(self) -> None:
        if self.method not in _STANDARD_METHODS and not _TOKEN.fullmatch(self.method):
            # A transport writes the request line as is: a space or line break would split it.
            raise ConfigurationError(f"{self.method!r} is not a valid HTTP method (RFC 9110 §9.1: a token)")
        url = _request_url(self.url)
        if url is not self.url:
            msgspec.structs.force_setattr(self, "url", url)
        checked = _CHECKED_HEADERS
        for item in self.headers.items():
            if item not in checked:
                _check_new_header(item)

    @property
    def path(self) -> str:
        """The URL path without scheme, host or query. It can hold PHI: show :attr:`shown` instead."""
        return urlsplit(self.url).path

    @property
    def shown(self) -> str:
        """What logs and error messages show of the target: the route, never the path or query."""
        return self.route or "(path withheld)"

    def __repr__(self) -> str:
        # Never the path (an accession number), the query (a session token, spec §4.3) nor headers.
        return f"HttpRequest({self.method} {self.shown})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        # msgspec gives every Struct a __rich_repr__ of all fields, which rich prefers to
        # __repr__: the headers (a bearer token) and URL would show. Only what __repr__ shows.
        return [("method", self.method), ("route", self.shown)]


@dataclass(slots=True)
class HttpResponse:
    """One HTTP response.

    ``headers`` has lower-case names. ``body`` holds the whole body when the transport read it
    (the built-in ones do for answers that declare 1 MiB or less, unless the request asked for a
    stream and the status is 2xx); otherwise ``stream`` yields the chunks (an async iterator on
    trio) and ``body`` is empty. Call ``close`` (or exhaust the stream) to give the connection back.

    A transport may also offer ``readinto(buffer) -> int`` (awaited on trio): it fills the caller's buffer from
    the same body (0 at its end) and raises the SDK's transport errors, like ``stream``. Reading
    a whole slide into reused buffers saves an allocation per chunk and keeps the bytes in
    the CPU cache while they are scanned and written. Use either ``stream`` or ``readinto``.
    """

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: Iterator[bytes] | AsyncIterator[bytes] | None = None
    closer: Any = None
    readinto: Callable[[bytearray], int] | Callable[[bytearray], Awaitable[int]] | None = None

    def close(self) -> None:
        """Give the connection back (or drop it, if the body was not read to the end)."""
        if self.closer is not None:
            self.closer()

    def header(self, name: str, default: str = "") -> str:
        """A header's value by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def __repr__(self) -> str:
        return f"HttpResponse({self.status}, body={len(self.body)} bytes, streamed={self.stream is not None})"


#: Bodies up to this size (declared by Content-Length) come from the built-in transports already
#: read (``HttpResponse.body``): a tile or a JSON answer costs no body generator; larger ones stream.
EAGER_BODY_BYTES = 1024 * 1024


def split_origin(url: str) -> tuple[str, str]:
    """``("scheme://authority", target)`` of a request URL; the target is the path and query,
    ``/`` where the path is empty (``http://h?q`` → ``/?q``). What transports cache per origin."""
    # One match finds where the authority ends (RFC 3986 §3.2: at the first "/", "?" or "#"),
    # instead of a find per delimiter: this runs on every request (issue #18).
    end = _ORIGIN.match(url).end()  # type: ignore[union-attr]  # matches every string
    target = url[end:]
    if "#" in target:
        target = target.split("#", 1)[0]
    return url[:end], target if target.startswith("/") else "/" + target


#: What :func:`split_origin` keeps as the origin: up to "//", then the authority.
_ORIGIN = re.compile(r"[^/]*//[^/?#]*|")


def send_headers(request: HttpRequest) -> dict[str, str]:
    """The header fields a transport sends for ``request``: its own, plus ``Accept-Encoding:
    identity`` unless it names an encoding.

    The SDK reads no compressed answers: a few MB of gzip can decode to GBs (a "gzip bomb"), and
    sizes and progress would not be true. Without the field any coding is acceptable
    (RFC 9110 §12.5.3), so every request says so; answers compressed anyway are refused
    (:class:`BodyReader`, :func:`sectra_core.multipart.files_decoder`).
    """
    headers = dict(request.headers)
    if not any(name.lower() == "accept-encoding" for name in headers):
        headers["Accept-Encoding"] = "identity"
    return headers


def keep_streaming(request: HttpRequest, status: int) -> bool:
    """Whether a driver hands a response over as a stream (True) or reads its body first (False).

    Error answers are read (up to :data:`ERROR_BODY_LIMIT`) so the error can be built from them.
    """
    return request.stream and 200 <= status < 300




@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """How much of one answer a client reads into memory; past it, :class:`ResponseTooLargeError`.

    ``json_bytes``: a JSON answer (image info, result lists; a list of big results can be tens of
    MB): 64 MiB. ``binary_bytes``: a tile, label image or attachment: 256 MiB. Slide files are
    streamed to disk, not held, and have no size limit; their part count is capped by
    :data:`sectra_core.multipart.MAX_PARTS`. Error answers are read up to
    :data:`ERROR_BODY_LIMIT` only.

    ``ResponseLimits.from_env()`` (what clients use when given no ``limits=``) takes the
    defaults from ``SECTRA_MAX_JSON_BYTES`` and ``SECTRA_MAX_BINARY_BYTES`` when set.
    """

    json_bytes: int = 64 * MiB  # also in from_env: slots leave no class attribute to read
    binary_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        if self.json_bytes < 1 or self.binary_bytes < 1:
            raise ConfigurationError("response limits must be positive numbers of bytes")

    @classmethod
    def from_env(cls) -> ResponseLimits:
        """The limits, with the defaults replaced by ``SECTRA_MAX_JSON_BYTES`` /
        ``SECTRA_MAX_BINARY_BYTES`` where those are set."""
        return cls(
            json_bytes=env_limit("SECTRA_MAX_JSON_BYTES", 64 * MiB),
            binary_bytes=env_limit("SECTRA_MAX_BINARY_BYTES", 256 * MiB),
        )


def check_whole_body(request: HttpRequest, response: HttpResponse, limits: ResponseLimits) -> None:
    """Hold a body that the transport read whole (a small answer) to the limits a streamed one
    meets in :class:`BodyReader`: a 2xx answer that is compressed or over its limit raises."""
    status = response.status
    if status < 200 or status >= 300:
        return  # an error answer is only quoted
    limit = limits.binary_bytes if request.binary else limits.json_bytes
    if len(response.body) > limit or "content-encoding" in response.headers:
        BodyReader(request, response, limits).feed(response.body)  # raises, with its message


class BodyReader:
    """Collects a response body that a client reads whole, within :class:`ResponseLimits`.

    Both clients' drivers use it: ``reader = BodyReader(request, response, limits)``, then
    ``reader.feed(chunk)`` for each chunk until it returns True or the body ends, then
    ``reader.body()``. An answer with a 2xx status that declares or reaches more than its limit,
    or comes compressed, raises before more is read; an error answer is cut at
    :data:`ERROR_BODY_LIMIT` (it is only quoted in part).
    """

    def __init__(self, request: HttpRequest, response: HttpResponse, limits: ResponseLimits) -> None:
        self._what = f"{request.method} {request.shown}"
        self._parts: list[bytes] = []
        self._size = 0
        self._strict = 200 <= response.status < 300
        if not self._strict:
            self.limit = ERROR_BODY_LIMIT
            return
        self._kind = "binary" if request.binary else "JSON"
        self.limit = limits.binary_bytes if request.binary else limits.json_bytes
        encoding = content_encoding(response.headers)
        if encoding:
            # urllib3 would inflate it without bound (a 2 MB gzip answer took the sync client to
            # 4.2 GB, issue #12); the SDK asked for identity, so a coded answer is refused.
            raise DecodeError(
                f"{self._what}: the answer came with Content-Encoding {encoding!r}; the SDK asks for "
                "'identity' and reads no compressed answers (their decoded size has no bound)"
            )
        declared = digits(response.header("content-length"))
        if declared is not None and declared > self.limit:
            self._too_large(f"it declares {declared} bytes")

    def feed(self, chunk: bytes) -> bool:
        """Add one chunk; True once the body is read as far as it will be (an error excerpt)."""
        self._parts.append(chunk)
        self._size += len(chunk)
        if self._size > self.limit:
            if self._strict:
                self._parts.clear()
                self._too_large(f"more than {self.limit} bytes arrived")
            return True
        return False

    def body(self) -> bytes:
        """The bytes read."""
        return b"".join(self._parts)

    def _too_large(self, detail: str) -> None:
        env = "SECTRA_MAX_BINARY_BYTES" if self._kind == "binary" else "SECTRA_MAX_JSON_BYTES"
        field_ = "binary_bytes" if self._kind == "binary" else "json_bytes"
        raise ResponseTooLargeError(
            f"{self._what}: the answer is larger than the {self.limit}-byte limit for {self._kind} "
            f"answers ({detail}); to accept it, pass limits=ResponseLimits({field_}=...) to the "
            f"client or set {env}"
        )
