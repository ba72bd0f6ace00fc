"""The trio transport: HTTP/1.1 over trio's streams (``trio.open_tcp_stream``, ``trio.SSLStream``),
pooled, one cancel scope per exchange; responses parsed by llhttp or h11 (:mod:`._http11`).

Clients do not live here (:mod:`sectra_transports.trio` binds this transport to the trio client).
No threads: every byte moves through trio's streams (a download's sized body is read into the
caller's buffer by the stream's own socket, ``recv_into``). Measured against the ``trio.lowlevel``
raw-descriptor path this replaced, ``SocketStream`` cost 1-14 % more client CPU at 16 and 64
requests in flight (issue #25, bench/README.md): under the 15 % that would have justified keeping
a ``trio.lowlevel`` path, so there is none.

A pooled connection is reused only while it is clean, as urllib3 and httpcore do: an idle
connection whose socket has become readable (a late or stray answer, an unsolicited ``408``, the
server's close) is closed, never read as the next answer; so is one whose answer was followed by
more bytes. Over TLS the check also asks the TLS layer for what it already holds: bytes decrypted
with the body's last record (``pending()``), and a later record trio has already taken off the
socket, still encrypted (:meth:`_Connection.tls_unread`; httpcore misses that one).
"""

from __future__ import annotations

import math
import select
import ssl
from collections.abc import AsyncGenerator
from typing import NamedTuple
from urllib.parse import urlsplit

import h11
import trio

from sectra_core.errors import ConnectError, RemoteProtocolError
from sectra_core.headers import digits, merge_headers
from sectra_core.http import EAGER_BODY_BYTES, HttpRequest, HttpResponse, keep_streaming, send_headers, split_origin
from sectra_core.transport import TransportOptions

from ._http11 import PARSERS, ResponseParser, default_parser, make_parser, request_head
from ._proxy import Proxy, proxy_for
from ._trio_errors import map_exceptions

__all__ = ["TrioTransport"]

# (scheme, host, port, proxy URL or ""): connections through a proxy are pooled apart.
_Key = tuple[str, str, int, str]

#: The most bytes asked of a TLS stream at once when filling a caller's buffer.
_MAX_TLS_READ = 256 * 1024


class _Connection:
    """One HTTP/1.1 connection: a ``trio.SocketStream``, or a ``trio.SSLStream`` over one."""

    __slots__ = ("stream", "socket", "plain", "reused", "body_started", "_poller")

    def __init__(self, stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]) -> None:
        self.stream = stream
        self.plain = isinstance(stream, trio.SocketStream)
        #: The socket under the stream, for the idle check and for reads into a caller's buffer.
        self.socket = stream.socket if isinstance(stream, trio.SocketStream) else stream.transport_stream.socket
        self.reused = False
        #: Whether the current response's body generator has run (see handle_async_request).
        self.body_started = False
        self._poller: select.poll | None = None
        if hasattr(select, "poll"):  # not on Windows
            self._poller = select.poll()
            self._poller.register(self.socket.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Whether the socket has something to read (or has been closed) while no answer is due:
        the server has sent something nobody asked for, or hung up. Either way, not reusable."""
        if isinstance(self.stream, trio.SSLStream) and self.stream.pending():
            # Bytes the TLS layer has already decrypted (a stray sent in the same record as the
            # end of a body): no longer on the socket, so the poll below cannot see them.
            return True
        if self._poller is not None:
            return bool(self._poller.poll(0))
        return bool(select.select([self.socket], [], [], 0)[0])  # pragma: no cover - Windows

    async def tls_unread(self) -> bool:
        """Whether the TLS stream already holds bytes nobody asked for: a stray record read off the
        socket (still encrypted) together with the end of a body, which neither the socket poll nor
        ``pending()`` sees. Asks the stream for a byte in a scope whose deadline has passed: trio
        cancels it when it next schedules, so a record the stream holds is decrypted and comes at
        once, while an empty socket ends the ask at its first wait, before anything is read (the
        socket's own bytes are the poll's to see)."""
        if self.plain:
            return False
        try:
            with trio.CancelScope() as scope:
                # Set after entering: a scope entered past its deadline is cancelled at once,
                # before the stream could look at what it holds.
                scope.deadline = -math.inf
                await self.stream.receive_some(1)
                return True  # a byte, or b"": the close
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return True
        return False

    async def receive_some(self, size: int) -> bytes:
        """Up to ``size`` bytes, what one read brings; b"" at the end."""
        data = await self.stream.receive_some(size)
        return data if type(data) is bytes else bytes(data)  # TLS gives a bytearray

    async def receive_into(self, view: memoryview) -> int:
        """Up to ``len(view)`` bytes into ``view``, what one read brings; 0 at the end."""
        if self.plain:
            # The stream's own socket reads straight into the caller's buffer: no bytes object
            # per read (a download is gigabytes).
            return await self.socket.recv_into(view)
        data = await self.stream.receive_some(min(len(view), _MAX_TLS_READ))
        view[: len(data)] = data
        return len(data)

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


class _Route(NamedTuple):
    """What one origin's requests share, worked out once per base URL (not per request)."""

    key: _Key
    netloc: str
    proxy: Proxy | None
    absolute: bool  # plain http through a proxy: the whole URL is the target


#: Bytes asked of the socket per read while a response's head and small body arrive.
_READ_SIZE = 64 * 1024


class TrioTransport:
    """``handle_async_request`` over pooled HTTP/1.1 connections.

    Keeps up to ``options.pool_size`` (default 100) idle connections per host. A request on a reused connection
    that the server had already closed is retried once on a fresh one when nothing of it can have
    been processed (the classic keep-alive race). Responses are parsed by llhttp (``httptools``)
    where it is installed, else by h11 (:mod:`sectra_transports._http11`); ``parser`` names one.
    """

    def __init__(self, options: TransportOptions | None = None, *, parser: str | None = None) -> None:
        self.options = options or TransportOptions()
        self._pool_size = self.options.pool_size or 100
        if parser is not None and parser not in PARSERS:
            raise ValueError(f"unknown HTTP parser {parser!r}; this installation has {', '.join(PARSERS)}")
        self.parser = parser or default_parser()
        self._idle: dict[_Key, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._routes: dict[str, _Route] = {}

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            verify = self.options.verify
            ctx = ssl.create_default_context(cafile=verify if isinstance(verify, str) else None)
            if verify is False:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    async def _connect(self, key: _Key, proxy: Proxy | None) -> _Connection:
        scheme, host, port, _ = key
        with map_exceptions("connect", f"{scheme}://{host}:{port}"), trio.fail_after(self.options.connect_timeout):
            if proxy is None:
                stream = await trio.open_tcp_stream(host, port)
            else:
                stream = await trio.open_tcp_stream(proxy.host, proxy.port)
                if scheme == "https":
                    try:
                        await _tunnel(stream, host, port, proxy)
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
            if scheme == "https":
                tls = trio.SSLStream(stream, self._ssl_context(), server_hostname=host, https_compatible=True)
                try:
                    await tls.do_handshake()
                except BaseException:
                    await trio.aclose_forcefully(stream)
                    raise
                return _Connection(tls)
        return _Connection(stream)

    async def _checkout(self, key: _Key, proxy: Proxy | None) -> _Connection:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.readable() or await conn.tls_unread():
                # Something arrived while it sat idle (a stray answer, a 408, the close): it is
                # not the answer to the request about to be sent.
                await conn.aclose()
                continue
            conn.reused = True
            return conn
        return await self._connect(key, proxy)

    def _checkin(self, key: _Key, conn: _Connection) -> bool:
        pool = self._idle.get(key)
        if pool is None:
            pool = self._idle[key] = []
        if len(pool) < self._pool_size:
            pool.append(conn)
            return True
        return False

    def _route(self, origin: str) -> _Route:
        # The scheme and authority of every URL a client sends are its base URL's: cache by them.
        route = self._routes.get(origin)
        if route is None:
            parts = urlsplit(origin)
            scheme = parts.scheme
            port = parts.port or (443 if scheme == "https" else 80)
            proxy = proxy_for(origin, self.options.proxy)
            key = (scheme, parts.hostname or "", port, proxy.url if proxy else "")
            route = _Route(key, parts.netloc, proxy, proxy is not None and scheme == "http")
            if len(self._routes) < 64:
                self._routes[origin] = route
        return route

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; a body of up to 1 MiB comes read, a larger or streamed one as an
        async iterator."""
        origin, target = split_origin(request.url)
        route = self._route(origin)
        headers = [("Host", route.netloc), *send_headers(request).items()]
        if route.absolute:
            # Plain http through a proxy: the absolute URL as target (RFC 9112 §3.2.2).
            target = origin + target
            if route.proxy is not None and route.proxy.authorization:
                headers.append(("Proxy-Authorization", route.proxy.authorization))
        if request.upload is not None:
            headers.append(("Content-Length", str(request.upload.length)))
        elif request.body is not None:
            headers.append(("Content-Length", str(len(request.body))))
        data = request_head(request.method, target, headers)
        if request.body:
            data += request.body
        key = route.key
        for attempt in (1, 2):
            conn = await self._checkout(key, route.proxy)
            parser = make_parser(request.method, self.parser)
            try:
                await self._exchange(conn, request, data, parser)
            except RemoteProtocolError:
                await conn.aclose()
                # A kept-alive connection the server closed meanwhile fails before any answer.
                if attempt == 1 and conn.reused and request.idempotent and not parser.received:
                    continue
                raise
            except BaseException:
                await conn.aclose()
                raise
            break
        # Repeated fields joined as the urllib3 transport joins them (RFC 9110 §5.3).
        headers_out = merge_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in parser.headers)
        if parser.complete and not keep_streaming(request, parser.status):
            chunks = parser.take()
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            if not (parser.keep_alive and not parser.extra and self._checkin(key, conn)):
                await conn.aclose()
            return HttpResponse(parser.status, headers_out, body=body, closer=_released)
        conn.body_started = False
        length = digits(headers_out.get("content-length", ""))  # the parser has checked it already
        if parser.complete and length is not None:
            # The parser has seen the message end: its body is what it holds (a 204's
            # Content-Length announces nothing, RFC 9110 §15.3.5).
            length = sum(len(chunk) for chunk in parser.chunks)
        if length is not None and "transfer-encoding" not in headers_out and request.method != "HEAD":
            sized = _SizedBody(self, key, conn, parser, length)
            return HttpResponse(parser.status, headers_out, stream=sized.stream, closer=sized.close,
                                readinto=sized.readinto)
        stream = self._body(key, conn, parser)

        async def close() -> None:
            # aclose() on a body generator that never started runs none of its cleanup, so the
            # connection (neither read to the end nor returned) must be closed here.
            await stream.aclose()
            if not conn.body_started:
                await conn.aclose()

        return HttpResponse(parser.status, headers_out, stream=stream, closer=close)

    async def _exchange(self, conn: _Connection, request: HttpRequest, data: bytes, parser: ResponseParser) -> None:
        """Send the request; read the answer's head, and its body too when it is small and not
        to be streamed. One cancel scope, its deadline moved on before every read: the read
        timeout is the longest silence, without a scope per read."""
        timeout = self.options.read_timeout
        with map_exceptions("read"):
            with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
                await conn.stream.send_all(data)
                if request.upload is not None:
                    # A streamed body (STOW-RS): chunk by chunk, the deadline moved on each time.
                    # The chunks are read from local files on this thread: no hidden worker.
                    for chunk in request.upload.chunks():
                        scope.deadline = trio.current_time() + timeout
                        await conn.stream.send_all(chunk)
                eager: bool | None = None  # read the body too? (decided once the head is in)
                while not parser.complete:
                    if parser.head_complete:
                        if eager is None:
                            eager = self._eager(request, parser)
                        if not eager:
                            break
                    scope.deadline = trio.current_time() + timeout
                    chunk = await conn.receive_some(_READ_SIZE)
                    if chunk:
                        parser.feed(chunk)
                    else:
                        parser.eof()
            if scope.cancelled_caught:
                raise trio.TooSlowError

    @staticmethod
    def _eager(request: HttpRequest, parser: ResponseParser) -> bool:
        # Read now when it is small and declared: a stream only where the caller asked for one
        # (slide files) or the size is unknown or large (the client's limits judge those).
        if request.stream and 200 <= parser.status < 300:
            return False
        length = None
        for name, value in parser.headers:
            if name.lower() == b"content-length":
                length = value
            elif name.lower() == b"transfer-encoding":
                return False
        return length is not None and length.isdigit() and int(length) <= EAGER_BODY_BYTES

    async def _body(self, key: _Key, conn: _Connection, parser: ResponseParser) -> AsyncGenerator[bytes, None]:
        """A body of unknown length (chunked, or to the close), through the parser."""
        conn.body_started = True
        returned = False
        try:
            while True:
                for chunk in parser.take():
                    yield chunk
                if parser.complete:
                    if parser.keep_alive and not parser.extra:
                        returned = self._checkin(key, conn)
                    return
                with map_exceptions("read"), trio.fail_after(self.options.read_timeout):
                    data = await conn.receive_some(self.options.chunk_size)
                if data:
                    parser.feed(data)
                else:
                    parser.eof()
        finally:
            if not returned:
                await conn.aclose()

    async def aclose(self) -> None:
        """Close every pooled connection."""
        pools, self._idle = self._idle, {}
        for pool in pools.values():
            for conn in pool:
                await conn.aclose()

    async def sleep(self, seconds: float) -> None:
        """Sleep on trio's clock (so ``autojump_clock`` tests run instantly)."""
        await trio.sleep(seconds)

    async def __aenter__(self) -> TrioTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _SizedBody:
    """A ``Content-Length`` body read from the connection without a parser: as chunks, or into the caller's
    buffer (``readinto``, what downloads use: one reused buffer, nothing allocated per read).

    A parser would copy every byte through its buffers; for a sized body that is pure overhead on
    multi-GB slides. What the parser already holds goes first, then exactly the rest is read (never
    past the message). Read to its end, the connection goes back to the pool (its next answer gets
    a new parser); closed before that, it is dropped, never drained.
    """

    def __init__(self, transport: TrioTransport, key: _Key, conn: _Connection, parser: ResponseParser, length: int) -> None:
        self._transport = transport
        self._key = key
        self._conn = conn
        self._pending = parser.take()
        self._reusable = parser.keep_alive and not parser.extra
        self._length = length
        self._remaining = length - sum(len(chunk) for chunk in self._pending)
        self._settled = False  # the connection is back in the pool or closed
        self.stream = self._chunks()

    async def _chunks(self) -> AsyncGenerator[bytes, None]:
        """The body, chunk by chunk (at most ``chunk_size`` bytes each)."""
        self._conn.body_started = True
        size = self._transport.options.chunk_size
        try:
            while self._pending:
                yield self._pending.pop(0)
            while self._remaining > 0:
                with map_exceptions("read"), trio.fail_after(self._transport.options.read_timeout):
                    data = await self._conn.receive_some(min(size, self._remaining))
                self._count(len(data))
                yield data
            await self._settle(done=True)
        finally:
            await self._settle(done=False)

    async def readinto(self, buffer: bytearray) -> int:
        """Fill ``buffer`` with the next bytes of the body; their number, 0 at its end."""
        if not buffer:
            raise ValueError("readinto needs a non-empty buffer")
        self._conn.body_started = True
        try:
            if self._pending:
                chunk = self._pending[0]
                n = min(len(chunk), len(buffer))
                buffer[:n] = chunk[:n]
                if n == len(chunk):
                    self._pending.pop(0)
                else:
                    self._pending[0] = chunk[n:]
                return n
            if self._remaining <= 0:
                await self._settle(done=True)
                return 0
            with memoryview(buffer) as whole, whole[: min(len(buffer), self._remaining)] as view:
                with map_exceptions("read"), trio.fail_after(self._transport.options.read_timeout):
                    n = await self._conn.receive_into(view)
            self._count(n)
            return n
        except BaseException:
            await self._settle(done=False)
            raise

    def _count(self, n: int) -> None:
        if not n:
            raise RemoteProtocolError(
                f"the server closed the connection after {self._length - self._remaining} of {self._length} bytes"
            )
        self._remaining -= n

    async def _settle(self, done: bool) -> None:
        if self._settled:
            return
        self._settled = True
        if not (done and self._reusable and self._transport._checkin(self._key, self._conn)):
            await self._conn.aclose()

    async def close(self) -> None:
        """Drop the connection unless the body was read to its end (and it went back to the pool)."""
        await self.stream.aclose()
        await self._settle(done=False)


async def _released() -> None:
    """The closer of a response read whole: its connection is already back in the pool."""


async def _tunnel(stream: trio.abc.Stream, host: str, port: int, proxy: Proxy) -> None:
    """Ask the proxy for a tunnel to ``host:port`` (``CONNECT``, RFC 9110 §9.3.6); TLS then runs
    end to end through it."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = [("Host", authority)]
    if proxy.authorization:
        headers.append(("Proxy-Authorization", proxy.authorization))
    conn = h11.Connection(h11.CLIENT)
    await stream.send_all(
        (conn.send(h11.Request(method="CONNECT", target=authority, headers=headers)) or b"")
        + (conn.send(h11.EndOfMessage()) or b"")
    )
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(16384)
            if not data:
                raise ConnectError(f"the proxy {proxy.url} closed the connection instead of answering CONNECT")
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.InformationalResponse):
            continue
        if isinstance(event, h11.Response):
            if 200 <= event.status_code < 300:
                return
            hint = " (it wants credentials: put user:password@ in the proxy URL)" if event.status_code == 407 else ""
            raise ConnectError(
                f"the proxy {proxy.url} refused a tunnel to {authority}: {event.status_code} "
                f"{event.reason.decode('latin-1', 'replace')}{hint}"
            )
        raise ConnectError(f"the proxy {proxy.url} sent no answer to CONNECT")

