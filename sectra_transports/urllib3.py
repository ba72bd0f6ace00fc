"""The blocking transport, on urllib3: pooled connections, timeouts, TLS verification on by default.

    from sectra_transports.urllib3 import SectraClient
"""

from __future__ import annotations

import contextvars
import http.client
import io
import logging
from collections.abc import Callable, Generator

import urllib3

from sectra_core.errors import RemoteProtocolError
from sectra_core.headers import content_encoding, digits, header_int, merge_headers
from sectra_core.http import EAGER_BODY_BYTES, HttpRequest, HttpResponse, keep_streaming, split_origin
from sectra_core.transport import TransportOptions

from ._connections import POOL_CLASSES
from ._errors import map_exceptions, map_read_exceptions
from ._remote_slide_sync import RemoteSlide
from ._proxy import proxy_for
from ._sync import SectraClient

__all__ = ["Urllib3Transport", "SectraClient", "RemoteSlide"]

#: urllib3 retries nothing and follows no redirect (the core decides): what ``retries=False`` means
#: to urllib3, built once instead of on every request.
_NO_RETRIES = urllib3.Retry.from_int(False, redirect=False)


#: The route of the SDK request in flight on this thread (urllib3 logs from the calling thread).
_in_flight: contextvars.ContextVar[str | None] = contextvars.ContextVar("sectra_urllib3_route", default=None)


class _HideTargets(logging.Filter):
    """Shows the route instead of the target in urllib3's log lines about the SDK's requests.

    urllib3 logs every request line at DEBUG (``"GET /launchdata?requestId=..&sessionToken=..
    HTTP/1.1" 200``): the query of an external launch holds a session token (spec §4.3) and
    paths hold accession numbers (spec §4.5). While an SDK request is in flight, every argument
    that is a target (``/...``) or a URL (``...://...``) is replaced by the route; host, port and
    status stay. Other urllib3 users' lines are left alone.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        route = _in_flight.get()
        if route is not None and isinstance(record.args, tuple):
            record.args = tuple(
                route if isinstance(a, str) and (a.startswith("/") or "://" in a) else a for a in record.args
            )
        return True


_HIDE_TARGETS = _HideTargets()
for _name in ("urllib3.connectionpool", "urllib3.poolmanager", "urllib3.connection", "urllib3.response"):
    # A filter on a logger sees only that logger's own records, so each module's logger gets it.
    logging.getLogger(_name).addFilter(_HIDE_TARGETS)


def _response_headers(fields: urllib3.HTTPHeaderDict) -> dict[str, str]:
    """The response's header fields as the core takes them: lower-case names, a repeated field
    joined as the trio transport joins it (:func:`merge_headers`, RFC 9110 §5.3).

    urllib3 2.x keeps its fields as ``{lower-case name: [name, value, ...]}``: read directly, a
    field sent once costs one dict entry, instead of two generators and two ``lower()`` calls per
    field through ``iteritems()`` (issue #18). Anything else goes the public way.
    """
    container = getattr(fields, "_container", None)
    if type(container) is not dict:
        return merge_headers(fields.iteritems())
    headers: dict[str, str] = {}
    for key, entry in container.items():
        if len(entry) == 2:
            headers[key] = entry[1]
        else:
            headers.update(merge_headers((key, value) for value in entry[1:]))
    return headers


class Urllib3Transport:
    """``handle_request`` over a urllib3 ``PoolManager``; bodies always stream (``preload_content=False``).

    Redirects and urllib3's own retries are off: the core decides what may be repeated. Bodies
    are never decoded (``decode_content=False``): the SDK asks for identity, and an answer
    compressed anyway is refused by the core, not inflated without bound (a gzip bomb).

    The pools it makes use the connections of :mod:`._connections` (a plain response head parsed
    in one go, sockets that keep their timeout in Python); a ``pool`` passed in is used as it is.
    """

    def __init__(self, options: TransportOptions | None = None, *, pool: urllib3.PoolManager | None = None) -> None:
        self.options = options or TransportOptions()
        # Connections kept per host (TransportOptions.pool_size: None is this transport's 16, for
        # fetch_tiles' 16 threads), for the host's pool and for proxy pools alike.
        self._pool_size = self.options.pool_size or 16
        #: TLS settings for proxy pools; None when the caller supplied ``pool`` (it decides proxies).
        self._tls: dict[str, object] | None = None
        if pool is None:
            tls: dict[str, object] = {"cert_reqs": "CERT_REQUIRED"}
            if self.options.verify is False:
                tls = {"cert_reqs": "CERT_NONE"}
            elif isinstance(self.options.verify, str):
                tls["ca_certs"] = self.options.verify
            pool = urllib3.PoolManager(maxsize=self._pool_size, **tls)  # type: ignore[arg-type]
            pool.pool_classes_by_scheme = POOL_CLASSES
            self._tls = tls
        self._pool = pool
        self._proxies: dict[str, urllib3.ProxyManager] = {}
        #: Each origin's own pool (the manager's lookup parses the URL and builds a key each time).
        self._origins: dict[str, urllib3.HTTPConnectionPool] = {}
        self._timeout = urllib3.Timeout(
            connect=self.options.connect_timeout, read=self.options.read_timeout
        )

    def handle_request(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; a body of up to 1 MiB comes read, a larger or streamed one is left on
        the wire for the caller to stream."""
        token = _in_flight.set(request.shown)
        try:
            with map_exceptions():
                pool, target = self._pool_for(request.url)
                raw = pool.urlopen(
                    request.method,
                    target,
                    body=request.body,
                    # Not send_headers(request), a copy per call: urllib3 2.x lets http.client
                    # add "Accept-Encoding: identity" itself when the request names no
                    # Accept-Encoding (putrequest's skip_accept_encoding), which is what
                    # send_headers adds; test_every_request_asks_for_identity reads the wire.
                    headers=request.headers,
                    preload_content=False,
                    decode_content=False,
                    redirect=False,
                    retries=_NO_RETRIES,
                    timeout=self._timeout,
                    assert_same_host=False,
                )
        finally:
            _in_flight.reset(token)
        headers = _response_headers(raw.headers)
        try:
            # http.client reads a malformed Content-Length as "none" and reads to the close;
            # h11 refuses it. Refused here too, naming the header.
            length = header_int(headers, "content-length", RemoteProtocolError)
        except RemoteProtocolError:
            raw.close()
            raise
        if (
            length is not None and length <= EAGER_BODY_BYTES and "transfer-encoding" not in headers
            and not keep_streaming(request, raw.status)
        ):
            # A tile or a JSON answer: read now, no body generator (issue #18); the client holds
            # it to its limits as it would a streamed one.
            try:
                with map_exceptions():
                    body = raw.read(decode_content=False)
            except BaseException:
                raw.close()
                raise
            raw.release_conn()
            return HttpResponse(raw.status, headers, body=body)
        reader = _Body(raw, self.options.chunk_size)
        return HttpResponse(raw.status, headers, stream=reader.chunks(), closer=reader.close, readinto=reader.readinto)

    def _pool_for(self, url: str) -> tuple[urllib3.PoolManager | urllib3.HTTPConnectionPool, str]:
        """Where to send ``url`` and the target to send: the host's own connection pool and the
        path (found once per origin), or a ``ProxyManager`` (CONNECT for https) and the URL."""
        origin, target = split_origin(url)
        pool = self._origins.get(origin)
        if pool is not None and pool.pool is not None:  # a pool the manager closed has pool=None
            return pool, target
        proxy = proxy_for(url, self.options.proxy) if self._tls is not None else None
        if proxy is None:
            pool = self._pool.connection_from_url(url)
            if len(self._origins) < 64:
                self._origins[origin] = pool
            return pool, target
        manager = self._proxies.get(proxy.url)
        if manager is None:
            headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            manager = self._proxies[proxy.url] = urllib3.ProxyManager(
                proxy.url, proxy_headers=headers, maxsize=self._pool_size, **self._tls  # type: ignore[arg-type]
            )
            manager.pool_classes_by_scheme = POOL_CLASSES
        return manager, url

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()
        self._origins.clear()
        for manager in self._proxies.values():
            manager.clear()

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (retry backoff)."""
        import time

        time.sleep(seconds)

    def __enter__(self) -> Urllib3Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Body:
    """One response body, read either as chunks (``read1``) or into the caller's buffer.

    The connection goes back to the pool only when the body was read to its end; a body left
    half-read is dropped with its connection, never drained (it may be gigabytes).
    """

    def __init__(self, raw: urllib3.BaseHTTPResponse, chunk_size: int) -> None:
        self._raw = raw
        self._size = chunk_size
        self._complete = False
        self._first = True
        self.readinto: Callable[[bytearray], int] | None = None
        # urllib3's readinto() reads into a new bytes object and copies that over. Reading the
        # socket's buffered reader directly fills the caller's buffer instead, which is only the
        # same thing when neither urllib3 nor http.client has work to do on the bytes: no content
        # coding, no chunked framing, a Content-Length to count against, nothing read yet.
        fp = getattr(raw, "_fp", None)
        length = digits(raw.headers.get("content-length", ""))
        if (
            isinstance(fp, http.client.HTTPResponse)
            and isinstance(fp.fp, io.BufferedReader)
            and not fp.chunked
            and length is not None
            and fp.length == length
            and not content_encoding(raw.headers)
        ):
            self._fp, self._reader = fp, fp.fp
            self._length = self._left = length
            self.readinto = self._readinto

    def chunks(self) -> Generator[bytes, None, None]:
        """The body as ``read1`` chunks of at most ``chunk_size`` bytes."""
        raw = self._raw
        try:
            while True:
                with map_exceptions():
                    # read1: whatever has arrived (up to size), so a cut connection still
                    # delivers the bytes before the cut and errors can name the file.
                    chunk = raw.read1(self._size, decode_content=False)
                if not chunk:
                    self._complete = True
                    return
                yield chunk
        finally:
            self.close()

    def _readinto(self, buffer: bytearray) -> int:
        if not buffer:
            raise ValueError("readinto needs a non-empty buffer")
        if not self._left:
            self._end()
            return 0
        view = memoryview(buffer)[: self._left]
        try:
            with map_read_exceptions():
                # One read of the socket, like read1: whatever has arrived, so progress reports
                # keep coming on a slow link and a cut still delivers the bytes before it.
                if self._first:
                    # The reader may hold body bytes read along with the headers. readinto1
                    # would add a blocking socket read to them (and lose them if it times
                    # out); read1 hands them over alone. Afterwards the reader's buffer stays empty.
                    self._first = False
                    data = self._reader.read1(len(view))
                    n = len(data)
                    view[:n] = data
                else:
                    n = self._reader.readinto1(view)
        except BaseException:
            self.close()
            raise
        if not n:
            self.close()
            raise RemoteProtocolError(
                f"the server closed the connection after {self._length - self._left} of {self._length} body bytes"
            )
        self._left -= n
        return n

    def _end(self) -> None:
        # http.client did not see the body go by: tell it the response is over, or the pooled
        # connection would refuse its next request.
        self._fp.close()
        self._complete = True
        self.close()

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it."""
        if self._complete:
            self._raw.release_conn()
        else:
            self._raw.close()
