"""The trio transport: HTTP/1.1 with h11 over trio sockets; pooled, with timeouts as cancel scopes.

    from sectra_transports.trio import AsyncSectraClient

No threads: every byte moves through trio streams (TLS via ``trio.SSLStream``).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator
from urllib.parse import urlsplit

import h11
import trio

from sectra_core.errors import ConnectError, RemoteProtocolError
from sectra_core.headers import digits, merge_headers
from sectra_core.http import HttpRequest, HttpResponse, send_headers
from sectra_core.transport import TransportOptions

from ._async import AsyncSectraClient
from ._remote_slide import AsyncRemoteSlide
from ._proxy import Proxy, proxy_for
from ._trio_errors import map_exceptions

__all__ = ["TrioTransport", "AsyncSectraClient", "AsyncRemoteSlide"]

# (scheme, host, port, proxy URL or ""): connections through a proxy are pooled apart.
_Key = tuple[str, str, int, str]


class _Connection:
    """One HTTP/1.1 connection: a trio stream and its h11 state machine."""

    def __init__(self, stream: trio.abc.Stream, reused: bool = False) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)
        self.reused = reused
        #: Whether the current response's body generator has run (see handle_async_request).
        self.body_started = False

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


class TrioTransport:
    """``handle_async_request`` over pooled h11 connections.

    Keeps up to ``options.pool_size`` idle connections per host. A request on a reused connection
    that the server had already closed is retried once on a fresh one when nothing of it can have
    been processed (the classic keep-alive race).
    """

    def __init__(self, options: TransportOptions | None = None) -> None:
        self.options = options or TransportOptions()
        self._idle: dict[_Key, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None

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
        with map_exceptions("connect"), trio.fail_after(self.options.connect_timeout):
            if proxy is None:
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
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
                stream = tls
        return _Connection(stream)

    async def _checkout(self, key: _Key, proxy: Proxy | None) -> _Connection:
        idle = self._idle.get(key)
        if idle:
            conn = idle.pop()
            conn.reused = True
            return conn
        return await self._connect(key, proxy)

    def _checkin(self, key: _Key, conn: _Connection) -> bool:
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            pool = self._idle.setdefault(key, [])
            if len(pool) < self.options.pool_size:
                pool.append(conn)
                return True
        return False

    async def handle_async_request(self, request: HttpRequest) -> HttpResponse:
        """Send ``request``; the response body is streamed by an async iterator."""
        parts = urlsplit(request.url)
        scheme = parts.scheme
        port = parts.port or (443 if scheme == "https" else 80)
        proxy = proxy_for(request.url, self.options.proxy)
        key = (scheme, parts.hostname or "", port, proxy.url if proxy else "")
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        # HttpRequest made the target and header values valid for h11 (percent-encoded, ASCII).
        headers = [("Host", parts.netloc), *send_headers(request).items()]
        if proxy is not None and scheme == "http":
            # Plain http through a proxy: the absolute URL as target (RFC 9112 §3.2.2).
            target = f"http://{parts.netloc}{target}"
            if proxy.authorization:
                headers.append(("Proxy-Authorization", proxy.authorization))
        if request.body is not None:
            headers.append(("Content-Length", str(len(request.body))))
        h11_request = h11.Request(method=request.method, target=target, headers=headers)
        for attempt in (1, 2):
            conn = await self._checkout(key, proxy)
            try:
                response = await self._send(conn, h11_request, request.body)
            except RemoteProtocolError:
                await conn.aclose()
                # A kept-alive connection the server closed meanwhile fails before any answer.
                if attempt == 1 and conn.reused and request.idempotent:
                    continue
                raise
            except BaseException:
                await conn.aclose()
                raise
            break
        # Repeated fields joined as the urllib3 transport joins them (RFC 9110 §5.3).
        headers_out = merge_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers)
        conn.body_started = False
        length = digits(headers_out.get("content-length", ""))  # h11 has checked it already
        if length is not None and "transfer-encoding" not in headers_out and request.method != "HEAD":
            stream = self._sized_body(key, conn, length, _keep_alive(response, headers_out))
        else:
            stream = self._body(key, conn)

        async def close() -> None:
            # aclose() on a body generator that never started runs none of its cleanup, so the
            # connection (neither read to the end nor returned) must be closed here.
            await stream.aclose()
            if not conn.body_started:
                await conn.aclose()

        return HttpResponse(response.status_code, headers_out, stream=stream, closer=close)

    async def _send(self, conn: _Connection, req: h11.Request, body: bytes | None) -> h11.Response:
        with map_exceptions("read"):
            data = conn.h11.send(req) or b""
            if body:
                data += conn.h11.send(h11.Data(data=body)) or b""
            data += conn.h11.send(h11.EndOfMessage()) or b""
            with trio.fail_after(self.options.read_timeout):
                await conn.stream.send_all(data)
            while True:
                event = await self._next_event(conn)
                if isinstance(event, h11.Response):
                    return event
                if isinstance(event, h11.ConnectionClosed):
                    raise RemoteProtocolError("the server closed the connection without answering")

    async def _next_event(self, conn: _Connection) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = conn.h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # NEED_DATA is handled here
            with trio.fail_after(self.options.read_timeout):
                data = await conn.stream.receive_some(self.options.chunk_size)
            conn.h11.receive_data(bytes(data) if type(data) is not bytes else data)

    async def _body(self, key: _Key, conn: _Connection) -> AsyncGenerator[bytes, None]:
        conn.body_started = True
        returned = False
        try:
            while True:
                with map_exceptions("read"):
                    event = await self._next_event(conn)
                if isinstance(event, h11.Data):
                    yield event.data if type(event.data) is bytes else bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    returned = self._checkin(key, conn)
                    return
                elif isinstance(event, h11.ConnectionClosed):
                    raise RemoteProtocolError("the server closed the connection mid-body")
        finally:
            if not returned:
                await conn.aclose()

    async def _sized_body(self, key: _Key, conn: _Connection, length: int, keep_alive: bool) -> AsyncGenerator[bytes, None]:
        """A ``Content-Length`` body read straight from the socket.

        h11 would copy every byte through its receive buffer two or three times; for a sized body
        that is pure overhead on multi-GB slides. We take what h11 already buffered, then read
        exactly the rest (never past the message), and give a kept-alive connection a fresh h11
        state machine for its next request.
        """
        conn.body_started = True
        remaining = length
        returned = False
        try:
            while remaining:
                event = conn.h11.next_event()
                if isinstance(event, h11.Data):
                    remaining -= len(event.data)
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    returned = self._checkin(key, conn)
                    return
                else:
                    break  # NEED_DATA: h11 holds nothing more of this body
            size = self.options.chunk_size
            while remaining > 0:
                with map_exceptions("read"), trio.fail_after(self.options.read_timeout):
                    data = await conn.stream.receive_some(min(size, remaining))
                if not data:
                    raise RemoteProtocolError(
                        f"the server closed the connection after {length - remaining} of {length} bytes"
                    )
                remaining -= len(data)
                yield data if type(data) is bytes else bytes(data)  # SocketStream gives bytes; TLS may not
            if keep_alive:
                conn.h11 = h11.Connection(h11.CLIENT)
                pool = self._idle.setdefault(key, [])
                if len(pool) < self.options.pool_size:
                    pool.append(conn)
                    returned = True
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


def _keep_alive(response: h11.Response, headers: dict[str, str]) -> bool:
    if response.http_version != b"1.1":
        return False
    return "close" not in headers.get("connection", "").lower()
