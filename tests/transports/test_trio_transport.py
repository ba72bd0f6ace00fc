"""The trio transport's own rules: connection reuse, the keep-alive race, timeouts, TLS defaults."""

from __future__ import annotations

import gc
import ssl
from collections.abc import Awaitable, Callable

import pytest

from sectra_core.retry import NO_RETRY, RetryPolicy
import trio
import trio.testing

from sectra_core.errors import RemoteProtocolError, TimeoutError
from sectra_core.http import HttpRequest
from sectra_core.transport import TransportOptions
from sectra_mock import MockSectraServer
from sectra_transports._http11 import MAX_HEAD_BYTES, PARSERS
from sectra_transports.trio import AsyncSectraClient, TrioTransport

INFO = b'{"apiVersion": "1.10", "softwareVersion": "4.2"}'


@pytest.fixture(autouse=True, params=PARSERS)
def http_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with each response parser the trio transport can use."""
    monkeypatch.setenv("SECTRA_HTTP_PARSER", str(request.param))
    return str(request.param)


def answer(body: bytes, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body


async def tcp_server(nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]]) -> str:
    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    port = listeners[0].socket.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def read_request(stream: trio.SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(4096)
        if not chunk:
            return b""
        data += chunk
    return data


async def test_connections_are_reused(nursery: trio.Nursery) -> None:
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        while await read_request(stream):
            await stream.send_all(answer(INFO))

    url = await tcp_server(nursery, handler)
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        for _ in range(20):
            assert (await client.get_info()).api_version == "1.10"
    assert connections == 1


async def test_answers_are_freed_without_the_cycle_collector(nursery: trio.Nursery) -> None:
    """Nothing of an exchange (parser, header lists, body) is left in a reference cycle: with 64
    requests in flight, collecting such garbage cost more than parsing the answers (issue #18)."""

    async def handler(stream: trio.SocketStream) -> None:
        while await read_request(stream):
            await stream.send_all(answer(INFO))

    url = await tcp_server(nursery, handler)
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        await client.get_info()  # the connection, the adapter and every cache made before counting
        gc.collect()
        gc.disable()
        try:
            for _ in range(50):
                await client.get_info()
            garbage = gc.collect()
        finally:
            gc.enable()
    assert garbage == 0


async def test_stale_keep_alive_connection_is_retried_once(nursery: trio.Nursery) -> None:
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        if await read_request(stream):
            await stream.send_all(answer(INFO))  # promises keep-alive, then hangs up

    url = await tcp_server(nursery, handler)
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        for _ in range(3):
            await client.get_info()
    assert connections == 3


async def test_server_closing_without_answer_is_a_protocol_error(nursery: trio.Nursery) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)

    url = await tcp_server(nursery, handler)
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        with pytest.raises(RemoteProtocolError):
            await client.get_info()


async def test_read_timeout_is_a_cancel_scope(nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await trio.sleep_forever()

    url = await tcp_server(nursery, handler)
    start = trio.current_time()
    async with AsyncSectraClient(url, "t", api_version="5.0", read_timeout=30, retry=NO_RETRY) as client:
        with pytest.raises(TimeoutError, match="read timed out"):
            await client.get_info()
    assert 30 <= trio.current_time() - start < 31
    # with retries, a GET that times out is tried again until the policy's deadline
    start = trio.current_time()
    policy = RetryPolicy(attempts=10, backoff=1.0, jitter=0.0, deadline=70.0)
    async with AsyncSectraClient(url, "t", api_version="5.0", read_timeout=30, retry=policy) as client:
        with pytest.raises(TimeoutError):
            await client.get_info()
    # 30 s + wait 1 + 30 s + wait 2 + 30 s = 93 s; a wait of 4 s more would start past the 70 s deadline
    assert 93 <= trio.current_time() - start < 94


async def test_body_cut_mid_stream(nursery: trio.Nursery, tmp_path: object) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                              b"Content-Disposition: attachment; filename=\"a.svs\"\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    url = await tcp_server(nursery, handler)
    transport = TrioTransport()
    response = await transport.handle_async_request(HttpRequest("GET", url + "/x", {}, stream=True))
    with pytest.raises(RemoteProtocolError):
        async for _ in response.stream:  # type: ignore[union-attr]
            pass
    await transport.aclose()


async def test_tls_verification_is_on_by_default() -> None:
    ctx = TrioTransport()._ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    off = TrioTransport(TransportOptions(verify=False))._ssl_context()
    assert off.verify_mode == ssl.CERT_NONE


async def test_mock_closes_connection_close_requests_promptly(sectra_mock: MockSectraServer) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", sectra_mock.port)
    await stream.send_all(b"GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                          b"Authorization: Bearer " + sectra_mock.token.encode() + b"\r\n\r\n")
    data = b""
    with trio.fail_after(2):  # the pitfall: the response came, the close never did
        while chunk := await stream.receive_some(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"}")
    await stream.aclose()


async def test_fetch_tiles_bounded_and_unwrapped(sectra_mock: MockSectraServer) -> None:
    async with AsyncSectraClient(sectra_mock.url, sectra_mock.token) as client:
        keys = [(12, c, r) for c in range(4) for r in range(3)]
        tiles = await client.fetch_tiles("slide-001", keys, concurrency=4)  # a demo slide: real JPEGs
        assert set(tiles) == set(keys) and all(t.startswith(b"\xff\xd8") for t in tiles.values())
        from sectra_core.errors import NotFoundError

        with pytest.raises(NotFoundError):  # one bad tile: the error itself, not an ExceptionGroup
            await client.fetch_tiles("slide-001", [*keys, (12, 999, 0)], concurrency=4)


async def test_the_parser_is_chosen_by_name_or_environment(http_parser: str) -> None:
    assert TrioTransport().parser == http_parser  # SECTRA_HTTP_PARSER, set by the fixture
    assert TrioTransport(parser="h11").parser == "h11"
    with pytest.raises(ValueError, match="unknown HTTP parser 'llhttp'"):
        TrioTransport(parser="llhttp")


async def test_answers_in_every_framing_read_alike(nursery: trio.Nursery) -> None:
    """Sized, chunked and read-to-the-close bodies; a 100 Continue before the answer; an answer
    split into one-byte sends: the same body every time, and reuse only where it is safe."""
    body = b'{"apiVersion": "1.10", "softwareVersion": "4.2"}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    framings = {
        "sized": answer(body),
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked,
        "to-close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
        "continue": b"HTTP/1.1 100 Continue\r\n\r\n" + answer(body),
        "bytewise": answer(body),
    }
    connections: list[str] = []

    async def handler(stream: trio.SocketStream) -> None:
        while request := await read_request(stream):
            kind = request.split(b" ")[1].decode().strip("/")
            connections.append(kind)
            if kind == "bytewise":
                for i in range(len(framings[kind])):
                    await stream.send_all(framings[kind][i:i + 1])
            else:
                await stream.send_all(framings[kind])
            if kind == "to-close":
                return

    url = await tcp_server(nursery, handler)
    async with TrioTransport() as transport:
        for kind in framings:
            for _ in range(2):
                response = await transport.handle_async_request(HttpRequest("GET", f"{url}/{kind}"))
                if response.stream is not None:
                    got = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
                else:
                    got = response.body
                await response.closer()
                assert (response.status, got) == (200, body), kind
    # one connection for everything but the two answers read to the close
    assert len(connections) == 10


async def test_endless_headers_are_cut_at_the_head_limit(nursery: trio.Nursery) -> None:
    sent = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal sent
        await read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\n")
        try:
            while sent < 50 * MAX_HEAD_BYTES:
                await stream.send_all(b"X-Filler: " + b"a" * 1000 + b"\r\n")
                sent += 1012
        except trio.BrokenResourceError:
            pass

    url = await tcp_server(nursery, handler)
    async with TrioTransport() as transport:
        with pytest.raises(RemoteProtocolError, match="head|not valid"):
            await transport.handle_async_request(HttpRequest("GET", url + "/x"))
    assert sent < 10 * MAX_HEAD_BYTES  # refused early, not after reading it all


@pytest.mark.parametrize("garbage", [b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                                     b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
                                     b"NOT HTTP AT ALL\r\n\r\n"])
async def test_malformed_answers_are_protocol_errors(nursery: trio.Nursery, garbage: bytes) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(garbage)

    url = await tcp_server(nursery, handler)
    async with TrioTransport() as transport:
        with pytest.raises(RemoteProtocolError):
            response = await transport.handle_async_request(HttpRequest("GET", url + "/x"))
            if response.stream is not None:
                async for _ in response.stream:  # type: ignore[union-attr]
                    pass


async def test_bytes_after_the_answer_retire_the_connection(nursery: trio.Nursery) -> None:
    """A server that sends more than it declared (or a second, unasked answer) does not get its
    extra bytes read as the next answer: that connection is not reused."""
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        while await read_request(stream):
            await stream.send_all(answer(INFO) + answer(b'{"apiVersion": "6.66"}'))

    url = await tcp_server(nursery, handler)
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        for _ in range(3):
            assert (await client.get_info()).api_version == "1.10"
    assert connections == 3


async def test_readinto_fills_small_buffers_and_returns_the_connection(nursery: trio.Nursery) -> None:
    """A sized streamed body read into a 7-byte buffer: every byte, in order (part of it arrived
    with the head, the rest straight from the socket), then the connection is reused."""
    body = bytes(range(256)) * 40
    connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal connections
        connections += 1
        while await read_request(stream):
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            await stream.send_all(head + body[:100])
            await trio.sleep(0.01)
            await stream.send_all(body[100:])

    url = await tcp_server(nursery, handler)
    async with TrioTransport() as transport:
        for _ in range(2):
            response = await transport.handle_async_request(HttpRequest("GET", url + "/x", stream=True))
            assert response.readinto is not None
            buffer, got = bytearray(7), bytearray()
            while n := await response.readinto(buffer):  # type: ignore[misc]
                got += buffer[:n]
            assert bytes(got) == body
            await response.closer()
    assert connections == 1


async def test_a_query_without_a_path_is_sent_whole(nursery: trio.Nursery) -> None:
    """``http://host:port?q=1``: the target is ``/?q=1`` (the query was lost before split_origin)."""
    lines: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        while request := await read_request(stream):
            lines.append(request.split(b"\r\n", 1)[0])
            await stream.send_all(answer(INFO))

    url = await tcp_server(nursery, handler)
    async with TrioTransport() as transport:
        for target in ("?q=1", "/x?q=2"):
            response = await transport.handle_async_request(HttpRequest("GET", url + target))
            await response.closer()
    assert lines == [b"GET /?q=1 HTTP/1.1", b"GET /x?q=2 HTTP/1.1"]
