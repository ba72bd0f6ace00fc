"""The SDK's one exception tree.

Every error the SDK raises on purpose derives from :class:`SectraError`::

    SectraError
    ├── ConfigurationError          bad URL, insecure http without opt-in, bad arguments
    │   ├── UntrustedOriginError    a callback URL or credentials target outside the trusted origins
    │   └── MissingExtraError       an optional dependency is not installed (names the extra)
    ├── UnsupportedFeatureError     the negotiated IA-API version lacks the operation
    ├── TransportError              the request did not get an HTTP answer
    │   ├── ConnectError            could not connect (DNS, refused, TLS handshake)
    │   │   └── CertificateError    the TLS certificate is not trusted (never retried)
    │   ├── TimeoutError            connect or read timed out
    │   └── RemoteProtocolError     the server broke HTTP (dropped mid-body, bad framing)
    ├── HTTPStatusError             an HTTP answer with a status the operation did not expect
    │   ├── AuthenticationError     401 / 403
    │   ├── NotFoundError           404
    │   ├── ConflictError           409 (stale ``versionId``)
    │   ├── RateLimitedError        429
    │   └── ServerError             5xx
    ├── DecodeError                 a body that is not the JSON / shape the operation expects
    │   ├── ResponseTooLargeError   an answer (or a part count) past the configured limit
    │   ├── ImageTooLargeError      a tile or label whose header declares more pixels than allowed
    │   └── ImplausibleMetadataError slide info outside the documented bounds (tile size, size, µm/px)
    ├── ValidationError             a value the caller built breaks an IA-API rule
    │   └── RegionTooLargeError     a region, thumbnail or mask past the byte budget (read in pieces)
    ├── JobCancelled                a background analysis was cancelled (``cancel`` invocation)
    └── DownloadError               a slide-file download failed; nothing half-written remains
        ├── MultipartError          malformed or truncated multipart body
        ├── UnsafeFilenameError     a server-supplied filename that could escape the folder
        ├── DuplicateFilenameError  two parts (or an existing file) with one name
        ├── NotSlideFileError       a /files answer that is no slide file (an HTML or JSON page)
        ├── LocalFileError          the local disk refused a write (full, name too long, in the way)
        └── DownloadInterrupted     the connection failed mid-file (also a RemoteProtocolError)

Messages never contain the bearer token or PHI: IA-API status errors name the endpoint's route
(never its path or query) and quote nothing of the response body, and the request line never
includes headers.
"""

from __future__ import annotations

import builtins
import os
from typing import Any

__all__ = [
    "SectraError",
    "ConfigurationError",
    "UntrustedOriginError",
    "MissingExtraError",
    "UnsupportedFeatureError",
    "TransportError",
    "ConnectError",
    "CertificateError",
    "TimeoutError",
    "RemoteProtocolError",
    "HTTPStatusError",
    "AuthenticationError",
    "NotFoundError",
    "ConflictError",
    "RateLimitedError",
    "ServerError",
    "DecodeError",
    "ResponseTooLargeError",
    "ValidationError",
    "ImageTooLargeError",
    "ImplausibleMetadataError",
    "RegionTooLargeError",
    "JobCancelled",
    "DownloadError",
    "MultipartError",
    "UnsafeFilenameError",
    "DuplicateFilenameError",
    "NotSlideFileError",
    "LocalFileError",
    "DownloadInterrupted",
    "status_error",
    "status_hint",
    "safe_traceback",
]

#: How much of an error body is kept; enough to read a server's message, too little to leak a payload.
EXCERPT_LIMIT = 200


class SectraError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class ConfigurationError(SectraError, ValueError):
    """The client or server was set up with values that cannot work (URL, scheme, arguments)."""


class UntrustedOriginError(ConfigurationError):
    """A URL (an invocation's callback, a credentials target) is outside the trusted origins.

    Raised before any request is sent to it.
    """


class MissingExtraError(ConfigurationError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra.

    Also an :class:`ImportError`, so code that already guards the import keeps working.
    """


def require(module: str, extra: str, feature: str) -> Any:
    """Import ``module`` for ``feature``, or raise :class:`MissingExtraError` naming ``extra``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs {module!r}, which is not installed: pip install 'sectra-sdk[{extra}]'"
        ) from exc


class UnsupportedFeatureError(SectraError):
    """The operation does not exist in the IA-API version this client talks to.

    Raised before any request is sent.
    """

    def __init__(self, operation: str, minimum: str, negotiated: str) -> None:
        self.operation = operation
        self.minimum = minimum
        self.negotiated = negotiated
        super().__init__(
            f"{operation} needs IA-API {minimum} or newer; this server speaks {negotiated}"
        )


class TransportError(SectraError):
    """The request got no (complete) HTTP answer."""


class ConnectError(TransportError, ConnectionError):
    """Could not open a connection to the server."""


class CertificateError(ConnectError):
    """The server's TLS certificate was not trusted or does not name the host. Never retried:
    it would fail the same way; pass ``verify=`` the CA bundle that issued it."""


class TimeoutError(TransportError, builtins.TimeoutError):
    """A connect or read timeout expired."""


class RemoteProtocolError(TransportError):
    """The server broke the HTTP protocol, for example by closing the connection mid-body."""


class HTTPStatusError(SectraError):
    """The server answered with a status the operation does not accept.

    Attributes: ``status``, ``method``, ``path`` (for the IA-API the endpoint's route, e.g.
    ``/slides/{slide_id}/info``: no ids, no query) and ``body_excerpt`` (at most 200 printable
    characters). The body is kept out of the message unless ``quote_body=True``: a PACS's error
    text can echo an accession number or a patient name. Only bodies known to be safe to show are
    quoted (an app answering the mock, in ``sectra app check``).
    """

    def __init__(self, status: int, method: str, path: str, body: bytes = b"", *, quote_body: bool = False) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.body_excerpt = excerpt(body)
        if not body:
            detail = ""
        elif quote_body:
            detail = f": {self.body_excerpt}"
        else:
            detail = f" ({len(body)} bytes of body withheld: they may quote patient data)"
        #: What the SDK can tell about the likely cause and what to do ("" when nothing).
        self.hint = ""
        super().__init__(f"{method} {path} answered HTTP {status}{detail}")

    def add_hint(self, hint: str) -> None:
        """Append ``hint`` (the likely cause, what to do) to the message; never a token or PHI."""
        if hint and not self.hint:
            self.hint = hint
            self.args = (f"{self.args[0]}: {hint}", *self.args[1:])


class AuthenticationError(HTTPStatusError):
    """401 or 403: the token is missing, wrong or expired."""


class NotFoundError(HTTPStatusError):
    """404: no such slide, result, application or endpoint."""


class ConflictError(HTTPStatusError):
    """409: the ``versionId`` sent is not the current one; re-read and retry the update."""


class RateLimitedError(HTTPStatusError):
    """429: the server asks the client to slow down."""


class ServerError(HTTPStatusError):
    """5xx: the server failed."""


class DecodeError(SectraError, ValueError):
    """A body is not valid JSON or not the shape the operation expects.

    The message names the JSON path, e.g. ``$.imageSize.width``.
    """


class ResponseTooLargeError(DecodeError):
    """An answer is larger than the configured limit (after decoding), or has too many parts.

    Raised as soon as the limit is passed, before the rest is read.
    """


class ValidationError(SectraError, ValueError):
    """A value built by the caller breaks an IA-API rule (e.g. a polygon with two points)."""


class ImageTooLargeError(DecodeError):
    """A tile or label image whose header declares another size than the slide's geometry, or
    more pixels than the SDK decodes (``sectra_core.regions.MAX_TILE_PIXELS`` /
    ``MAX_LABEL_PIXELS``); refused before a pixel is decoded. Names the slide, level and tile."""


class ImplausibleMetadataError(DecodeError):
    """A slide's info states a tile size, image size, level count or microns per pixel outside
    the bounds documented in ``sectra_core.regions`` (docs/reliability.md, Security): nothing is
    allocated from it. The message names the field, its value and the bounds."""


class RegionTooLargeError(ValidationError):
    """A ``read_region`` / ``read_region_mpp`` / ``get_thumbnail`` whose output (or the pixels read
    to make it) would pass the slide's byte budget (``max_region_bytes``): read it in pieces with
    ``iter_regions``, or raise the budget."""


class JobCancelled(SectraError):
    """A background analysis was cancelled; raised from ``job.progress()`` in sync work."""


class DownloadError(SectraError):
    """A slide-file download failed. Files already completed stay; no partial file remains."""


class MultipartError(DownloadError):
    """The multipart body is malformed or ended early."""


class UnsafeFilenameError(DownloadError):
    """The server sent a filename that is empty, '.', '..', or holds control characters."""


class DuplicateFilenameError(DownloadError):
    """Two parts share a filename, or the target exists and neither skip nor overwrite was chosen."""

    #: The file that was already there, when that was the problem (else None).
    existing: os.PathLike[str] | None = None


class NotSlideFileError(DownloadError):
    """A ``/files`` answer whose type is not slide files (e.g. a ``text/html`` error page sent
    with status 200). Nothing was written."""


class LocalFileError(DownloadError, OSError):
    """Writing a downloaded file failed locally (disk full, file-size limit, name too long, a
    directory in the way). The message names the file; the partial file was removed."""

    def __str__(self) -> str:
        # OSError would prefix "[Errno N]": the errno stays on .errno, the message is for people.
        return self.strerror or super().__str__()


class DownloadInterrupted(DownloadError, RemoteProtocolError):
    """The connection failed in the middle of a download; the partial file was removed."""


_BY_STATUS: dict[int, type[HTTPStatusError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitedError,
}


def status_error(status: int, method: str, path: str, body: bytes = b"", *, quote_body: bool = False) -> HTTPStatusError:
    """Build the most specific :class:`HTTPStatusError` subclass for ``status`` (``quote_body``:
    see :class:`HTTPStatusError`)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else HTTPStatusError)
    return cls(status, method, path, body, quote_body=quote_body)


def safe_traceback(exc: BaseException, *, reveal: bool = False) -> str:
    """Where ``exc`` was raised (the frames of its traceback) without its message.

    For logging failures of user code: the location helps the developer, while the message of a
    foreign exception may quote patient data. SDK errors keep their messages (written to be safe).
    ``reveal``: keep every message too (development against the mock, ``SECTRA_DEBUG=1``).
    """
    import traceback

    # File, line and function only: source lines could quote data too (f-strings, literals).
    frames = "".join(f'  File "{f.filename}", line {f.lineno}, in {f.name}\n' for f in traceback.extract_tb(exc.__traceback__))
    if isinstance(exc, SectraError) or reveal:
        message = f": {exc}"
    else:
        message = " (message withheld: it may hold patient data; SECTRA_DEBUG=1 shows it in development)"
    return f"Traceback (most recent call last):\n{frames}{type(exc).__name__}{message}"


def excerpt(body: bytes, limit: int = EXCERPT_LIMIT) -> str:
    """A short printable excerpt of ``body``: decoded leniently, whitespace folded, cut at ``limit``."""
    text = body[: limit * 4].decode("utf-8", "replace")
    text = " ".join(text.split())
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: OpenSSL's reasons when the peer answered a TLS hello with something that is not TLS (an
#: ``HTTP/1.1 400`` from a plain-http server): ``WRONG_VERSION_NUMBER`` on OpenSSL 1.1/3.0,
#: ``record layer failure`` on 3.2+, ``packet length too long`` for some long plain answers.
_PLAIN_HTTP_REASONS = ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG")


def tls_error(exc: BaseException, where: str | None = None) -> ConnectError:
    """The SDK error for a failed TLS handshake: :class:`CertificateError` when verification
    failed; a server that answered plain HTTP is named as such (``where``: its origin)."""
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return CertificateError(f"TLS certificate not trusted: {exc.verify_message or exc}")
    reason = str(getattr(exc, "reason", "") or "").upper().replace(" ", "_")
    if reason in _PLAIN_HTTP_REASONS or any(r in str(exc).upper().replace(" ", "_") for r in _PLAIN_HTTP_REASONS):
        server = f"the server at {where}" if where else "the server"
        return ConnectError(
            f"TLS failed: {server} answered plain HTTP, not TLS ({reason or exc}): use http:// "
            "(allow_http=True, for a local mock) or check the port"
        )
    return ConnectError(f"TLS failed: {exc}")


def status_hint(status: int, route: str, params: Any, *, base_url: str = "", info_status: int | None = None) -> str:
    """What a status answer most likely means and what to do, for :meth:`HTTPStatusError.add_hint`.

    Names the slide id (opaque, not PHI) and the base URL tried; never an accession number (in
    ``params`` of case routes) or a token. ``info_status``: what the base URL's ``/info`` answered.
    """
    if status == 401:
        return ("the server refused the token: it may have expired, have been issued for another "
                "application, or be for another Sectra server (check the URL)")
    if status == 403:
        return ("the token may not do this: it may have been issued for another application "
                "(an application's token reaches only its own results) or have expired")
    if status != 404:
        return ""
    if info_status == 404:
        root = _origin_and_path(base_url)
        return (f"the server answered 404 for {root}/info as well, so the base path looks wrong "
                f"(tried {root}), unless the server predates /info: use the IA-API's base URL, "
                "e.g. https://host/SectraPathologyServer/external/imageanalysis/v1")
    slide = params.get("slide_id") if hasattr(params, "get") else None
    if slide and route.startswith("/slides/"):
        return f"slide {slide!r} is not on this server (check the slide id; ids are per server)"
    if slide and route.startswith("/images/"):
        return f"slide {slide!r} is not on this server, or this tile is outside its pyramid"
    return ""


def _origin_and_path(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"  # no user:password, no query
