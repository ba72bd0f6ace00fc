"""The blocking transport, on urllib3's public API: a ``PoolManager`` (or a ``ProxyManager``), bodies
streamed with ``preload_content=False``, urllib3's own ``Timeout``. TLS verification on by default.

Clients do not live here (:mod:`sectra_transports.urllib3` binds this transport to the blocking
client). urllib3 checks a pooled connection before reusing it (a readable idle socket, a late
answer or a close, is dropped); the one thing added is that interim ``1xx`` answers are skipped
(:class:`_Response`).
"""

from __future__ import annotations

import contextvars
import http.client
import logging
import ssl
from collections.abc import Generator

import urllib3
import urllib3.connection

from sectra_core.errors import RemoteProtocolError
from sectra_core.headers import header_int, merge_headers
from sectra_core.http import EAGER_BODY_BYTES, HttpRequest, HttpResponse, keep_streaming, split_origin
from sectra_core.transport import TransportOptions

from ._errors import map_exceptions
from ._proxy import proxy_for

__all__ = ["Urllib3Transport"]

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


#: The most interim answers read before an answer (the trio transport's parsers cap all of the
#: heads before an answer at 64 KiB instead).
_MAX_INTERIM = 100


class _Response(http.client.HTTPResponse):
    """http.client's response, reading on past interim ``1xx`` answers (RFC 9110 §15.2).

    http.client skips ``100 Continue`` only: a ``102 Processing`` or ``103 Early Hints`` would be
    taken as the answer, and the real one left on the wire to be read as the next request's
    answer. ``begin`` reads a head only while none is read (its ``headers`` is None), so it is
    called again for the head that follows. ``101`` (a protocol switch) ends the loop; the
    transport refuses it and drops the connection.
    """

    def begin(self) -> None:
        super().begin()
        interim = 0
        while 100 <= self.status < 200 and self.status != 101:
            interim += 1
            if interim > _MAX_INTERIM:  # a server that never answers, one small head at a time
                raise http.client.HTTPException(f"more than {_MAX_INTERIM} interim answers")
            self.headers = self.msg = None  # type: ignore[assignment]
            super().begin()


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _Response


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _Response

    @property
    def is_connected(self) -> bool:
        """urllib3's check before reuse, plus the TLS layer's own buffer: a stray answer sent in the
        same record as the end of a body is decrypted with it and no longer on the socket, so
        polling the socket (urllib3's check) cannot see it."""
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return False
        return super().is_connected


class _HTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


#: The pools by scheme, for a manager's ``pool_classes_by_scheme``: urllib3's, with :class:`_Response`.
_POOL_CLASSES: dict[str, type[urllib3.HTTPConnectionPool]] = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class Urllib3Transport:
    """``handle_request`` over a urllib3 ``PoolManager``; bodies always stream (``preload_content=False``).

    Redirects and urllib3's own retries are off: the core decides what may be repeated. Bodies
    are never decoded (``decode_content=False``): the SDK asks for identity, and an answer
    compressed anyway is refused by the core, not inflated without bound (a gzip bomb).

    An idle pooled connection that has become readable (a late or stray answer, an unsolicited
    ``408``, the server's close) is dropped by urllib3 before reuse; bytes that arrive with the end
    of a body die with http.client's reader of that one response. A ``pool`` passed in is used as it is.
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
            pool.pool_classes_by_scheme = _POOL_CLASSES
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
            with map_exceptions(request.url):
                pool, target = self._pool_for(request.url)
                raw = pool.urlopen(
                    request.method,
                    target,
                    # An upload goes as its chunks, sized by the Content-Length it brings.
                    body=request.body if request.upload is None else request.upload.chunks(),
                    # Not send_headers(request), a copy per call: urllib3 2.x lets http.client
                    # add "Accept-Encoding: identity" itself when the request names no
                    # Accept-Encoding (putrequest's skip_accept_encoding), which is what
                    # send_headers adds; test_every_request_asks_for_identity reads the wire.
                    headers=request.headers if request.upload is None
                    else {**request.headers, "Content-Length": str(request.upload.length)},
                    preload_content=False,
                    decode_content=False,
                    redirect=False,
                    retries=_NO_RETRIES,
                    timeout=self._timeout,
                    assert_same_host=False,
                )
        finally:
            _in_flight.reset(token)
        if raw.status == 101:
            # The connection now speaks another protocol: never an answer, never pooled (as on trio).
            raw.close()
            raise RemoteProtocolError("the server switched protocols; the SDK speaks HTTP/1.1 only")
        headers = merge_headers(raw.headers.iteritems())
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
        # Streamed as urllib3's read1 chunks. No readinto: urllib3 has no read into the caller's
        # buffer that does not copy through a new bytes object, and measured, handing its chunks
        # on as they are was the faster download (issue #25, bench/README.md).
        reader = _Body(raw, self.options.chunk_size)
        return HttpResponse(raw.status, headers, stream=reader.chunks(), closer=reader.close)

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
            manager.pool_classes_by_scheme = _POOL_CLASSES
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
    """One response body, read as chunks (``read1``).

    The connection goes back to the pool only when the body was read to its end; a body left
    half-read is dropped with its connection, never drained (it may be gigabytes).
    """

    def __init__(self, raw: urllib3.BaseHTTPResponse, chunk_size: int) -> None:
        self._raw = raw
        self._size = chunk_size
        self._complete = False

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

    def close(self) -> None:
        """Give the connection back if the body was read to its end, else drop it."""
        if self._complete:
            self._raw.release_conn()
        else:
            self._raw.close()
