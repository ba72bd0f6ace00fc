"""Pooled connections are reused only while they are clean (issue #25).

A raw-socket server on loopback plays what a real server or a hostile one may do on a kept-alive
connection: a stray answer nobody asked for, an unsolicited ``408`` before an idle close, bytes
after a body, interim ``1xx`` answers before the real one. Every test runs on both transports
(urllib3; trio with llhttp and with h11). What must hold: every request gets its own answer,
never the stray one, and never the answer meant for the request before it.

The server answers each request with ``answer to <target>``. Stray bytes go out once the client
says it has read the answer (so they reach an idle connection), and the client waits (on a
condition, not a sleep) until the server has sent them before it asks again.
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

if sys.platform.startswith("linux"):
    import fcntl
    import termios

import pytest
import trio

from sectra_core.errors import RemoteProtocolError
from sectra_core.http import HttpRequest
from sectra_core.transport import TransportOptions
from sectra_transports.trio import TrioTransport
from sectra_transports.urllib3 import Urllib3Transport
from tests.transports.conftest import ALL_PARSERS

MiB = 1024 * 1024


def answer(body: bytes, *, status: str = "200 OK", extra: str = "") -> bytes:
    """A sized answer with ``body``."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def chunked(body: bytes) -> bytes:
    """A chunked answer with ``body`` in two chunks."""
    half = len(body) // 2
    parts = [body[:half], body[half:]]
    framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"


STRAY = answer(b"stray answer nobody asked for")
TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
EARLY_HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _until_delivered(conn: socket.socket) -> None:
    """Wait until the peer's kernel has acknowledged everything sent (Linux: the send queue's
    unacknowledged bytes, ``TIOCOUTQ``), so the client's socket holds it when the client asks again."""
    if not sys.platform.startswith("linux"):
        return
    deadline = time.monotonic() + 10
    while struct.unpack("i", fcntl.ioctl(conn, termios.TIOCOUTQ, b"\0" * 4))[0] and time.monotonic() < deadline:
        time.sleep(0.001)


@dataclass
class Play:
    """What the server sends for one request: ``before`` (interim answers), the honest answer,
    then ``after`` (stray bytes, sent once the client has read the answer); ``close``: hang up after."""

    before: bytes = b""
    after: bytes = b""
    close: bool = False
    body: bytes | None = None  # the answer's body; None: "answer to <target>"
    frame: Callable[[bytes], bytes] = answer
    then: bytes = b""  # sent at once in a write of its own (over TLS: a record of its own)


class Scripted:
    """A loopback HTTP/1.1 server on raw sockets, a thread per connection; ``plays[n]`` is what it
    does for the n-th request it reads (any connection), a plain answer past the end."""

    def __init__(self, plays: list[Play], tls: ssl.SSLContext | None = None) -> None:
        self.plays = plays
        self._tls = tls
        #: (connection number, target) of every request, in order.
        self.seen: list[tuple[int, str]] = []
        self._done = threading.Condition()
        self._answered = 0
        self._read = 0
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    def _serve(self) -> None:
        number = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._one, args=(conn, number), daemon=True)
            self._threads.append(thread)
            thread.start()
            number += 1

    def _one(self, conn: socket.socket, number: int) -> None:
        # No Nagle: a stray sent after an answer goes out now, not when the answer is acknowledged.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)  # the handshake, in this thread
            except (OSError, ssl.SSLError):
                conn.close()
                return
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    try:
                        more = conn.recv(65536)
                    except OSError:
                        return
                    if not more:
                        return
                    data += more
                head, data = data.split(b"\r\n\r\n", 1)
                target = head.split(b" ", 2)[1].decode("latin-1")
                with self._done:
                    index = len(self.seen)
                    self.seen.append((number, target))
                play = self.plays[index] if index < len(self.plays) else Play()
                body = play.body if play.body is not None else f"answer to {target}".encode()
                try:
                    conn.sendall(play.before + play.frame(body))
                    if play.then:
                        conn.sendall(play.then)
                    if play.after:
                        with self._done:
                            self._done.wait_for(lambda index=index: self._read > index or self._stop.is_set(), 10)
                        conn.sendall(play.after)
                        _until_delivered(conn)
                except OSError:
                    return
                with self._done:
                    self._answered += 1
                    self._done.notify_all()
                if play.close:
                    return

    def read(self, count: int) -> None:
        """The client has read ``count`` answers."""
        with self._done:
            self._read = count
            self._done.notify_all()

    def wait_answered(self, count: int) -> None:
        """Until ``count`` answers (with their strays) have been sent."""
        with self._done:
            assert self._done.wait_for(lambda: self._answered >= count, 10), f"the server sent {self._answered} answers"

    @property
    def connections(self) -> int:
        return len({number for number, _ in self.seen})

    def close(self) -> None:
        self._stop.set()
        self.read(1 << 30)
        self._threads[0].join(5)
        self._sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[..., Scripted]]:
    made: list[Scripted] = []

    def make(plays: list[Play], tls: ssl.SSLContext | None = None) -> Scripted:
        made.append(Scripted(plays, tls))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture(params=ALL_PARSERS)
def transport_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def exchange(name: str, server: Scripted, targets: list[str], *, stream: bool = False,
             options: TransportOptions | None = None) -> list[tuple[int, bytes]]:
    """Each target in turn on one transport of kind ``name``: (status, body) of each answer.

    After reading each answer the client tells the server so, and before each request after the
    first it waits until the server has sent everything of the play before (its stray bytes
    included): a stray is on the wire, after the answer, when it asks again.
    ``stream``: read bodies through ``readinto`` (what downloads do) where offered, else ``stream``.
    """
    if name == "urllib3":
        results: list[tuple[int, bytes]] = []
        with Urllib3Transport(options) as transport:
            for i, target in enumerate(targets):
                if i:
                    server.wait_answered(i)
                response = transport.handle_request(HttpRequest("GET", server.url + target, stream=stream))
                try:
                    if response.readinto is not None:
                        body = bytearray()
                        buffer = bytearray(256 * 1024)
                        while n := response.readinto(buffer):  # type: ignore[misc]
                            body += buffer[:n]
                        results.append((response.status, bytes(body)))
                    elif response.stream is not None:
                        results.append((response.status, b"".join(response.stream)))  # type: ignore[arg-type]
                    else:
                        results.append((response.status, response.body))
                finally:
                    response.close()
                server.read(i + 1)
        return results

    parser = "h11" if name == "trio-h11" else None

    async def run() -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        async with TrioTransport(options, parser=parser) as transport:
            for i, target in enumerate(targets):
                if i:
                    await trio.to_thread.run_sync(server.wait_answered, i)
                response = await transport.handle_async_request(HttpRequest("GET", server.url + target, stream=stream))
                try:
                    if response.readinto is not None:
                        body = bytearray()
                        buffer = bytearray(256 * 1024)
                        while n := await response.readinto(buffer):  # type: ignore[misc]
                            body += buffer[:n]
                        out.append((response.status, bytes(body)))
                    elif response.stream is not None:
                        out.append((response.status, b"".join([c async for c in response.stream])))  # type: ignore[union-attr]
                    else:
                        out.append((response.status, response.body))
                finally:
                    await response.closer()
                server.read(i + 1)
        return out

    return trio.run(run)


def honest(*targets: str) -> list[tuple[int, bytes]]:
    return [(200, f"answer to {t}".encode()) for t in targets]


# --- stray answers on an idle connection --------------------------------------------------------


def test_a_late_extra_answer_is_not_the_next_requests_answer(transport_name: str, scripted: Any) -> None:
    """The server answers /a, then sends a second answer nobody asked for. The idle connection
    is readable when /b goes out: it is retired, and /b and /c get their own answers."""
    server = scripted([Play(after=STRAY)])
    assert exchange(transport_name, server, ["/a", "/b", "/c"]) == honest("/a", "/b", "/c")
    assert server.connections == 2  # the dirty one retired; the fresh one reused for /c
    assert server.seen[1:] == [(1, "/b"), (1, "/c")]


@pytest.mark.parametrize("after", [STRAY, TIMEOUT_408], ids=["stray", "408"])
def test_over_tls_a_stray_on_an_idle_connection_is_not_the_next_answer(
    transport_name: str, scripted: Any, tls_ca_path: Any, after: bytes,
) -> None:
    """The same over TLS: the check looks at the socket under the TLS stream."""
    ca, ca_path = tls_ca_path
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = scripted([Play(after=after)], tls=context)
    got = exchange(transport_name, server, ["/a", "/b", "/c"], options=TransportOptions(verify=ca_path))
    assert got == honest("/a", "/b", "/c")
    assert server.connections == 2


def test_an_unsolicited_408_before_an_idle_close_is_not_the_next_answer(transport_name: str, scripted: Any) -> None:
    """What servers do on an idle timeout (RFC 9110 §15.5.9): a 408 nobody asked for, then the close."""
    server = scripted([Play(after=TIMEOUT_408, close=True)])
    assert exchange(transport_name, server, ["/a", "/b"]) == honest("/a", "/b")
    assert server.connections == 2


def test_an_unsolicited_408_on_a_connection_left_open_is_not_the_next_answer(transport_name: str, scripted: Any) -> None:
    server = scripted([Play(after=TIMEOUT_408)])
    assert exchange(transport_name, server, ["/a", "/b", "/c"]) == honest("/a", "/b", "/c")
    assert server.connections == 2


@pytest.mark.parametrize("size", [100, 2 * MiB], ids=["small-body", "body-over-1MiB"])
@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
def test_bytes_after_a_sized_body_retire_the_connection(transport_name: str, scripted: Any, size: int, stream: bool) -> None:
    """Bytes past a Content-Length body: read with it, or left on the socket (a large body is
    streamed, or read into the caller's buffer); either way the connection is not reused."""
    body = bytes(range(256)) * (size // 256)
    server = scripted([Play(body=body, after=STRAY)])
    got = exchange(transport_name, server, ["/a", "/b", "/c"], stream=stream)
    assert got == [(200, body), *honest("/b", "/c")]
    assert server.connections == 2


def test_bytes_after_a_chunked_body_retire_the_connection(transport_name: str, scripted: Any) -> None:
    server = scripted([Play(frame=chunked, after=STRAY)])
    assert exchange(transport_name, server, ["/a", "/b"], stream=True) == honest("/a", "/b")
    assert server.connections == 2


@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
def test_a_stray_sent_with_the_answer_in_one_write_is_never_an_answer(transport_name: str, scripted: Any,
                                                                     stream: bool) -> None:
    """The stray arrives in the same segment as the answer. The trio transport's parser sees the
    bytes past the message and retires the connection. urllib3 (http.client) reads each answer
    through a buffered reader of its own: bytes it read past the body die with that reader, and
    any it did not are on the socket, where urllib3's check before reuse finds them."""
    server = scripted([Play(frame=lambda body: answer(body) + STRAY), Play(frame=lambda body: answer(body) + STRAY)])
    assert exchange(transport_name, server, ["/a", "/b", "/c"], stream=stream) == honest("/a", "/b", "/c")
    if transport_name != "urllib3":
        assert server.connections == 3


def test_a_clean_connection_is_reused(transport_name: str, scripted: Any) -> None:
    server = scripted([])
    assert exchange(transport_name, server, ["/a", "/b", "/c"]) == honest("/a", "/b", "/c")
    assert server.connections == 1


# --- interim answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("interim", [CONTINUE, PROCESSING, EARLY_HINTS, PROCESSING + EARLY_HINTS + EARLY_HINTS],
                         ids=["100", "102", "103", "102-103-103"])
def test_interim_answers_are_skipped_and_the_connection_stays_in_step(transport_name: str, scripted: Any,
                                                                     interim: bytes) -> None:
    """1xx answers (RFC 9110 §15.2) come before the real one; the client takes the real one, and
    the next request on the same connection gets its own answer, not the one before."""
    server = scripted([Play(before=interim), Play(before=interim)])
    assert exchange(transport_name, server, ["/a", "/b", "/c"]) == honest("/a", "/b", "/c")
    assert server.connections == 1


def test_endless_interim_answers_are_refused(transport_name: str, scripted: Any) -> None:
    """A server that sends interim answers and never the answer: refused once they pass 64 KiB of
    heads (trio) or 100 answers (urllib3), not read forever."""
    server = scripted([Play(before=EARLY_HINTS * 2000)])
    with pytest.raises(RemoteProtocolError):
        exchange(transport_name, server, ["/a"])


def test_an_interim_answer_before_a_streamed_body(transport_name: str, scripted: Any) -> None:
    body = b"x" * (2 * MiB)
    server = scripted([Play(before=EARLY_HINTS, body=body)])
    assert exchange(transport_name, server, ["/a", "/b"], stream=True) == [(200, body), *honest("/b")]
    assert server.connections == 1


# --- what a user would see: one slide's metadata for another ------------------------------------


API_INFO = b'{"apiVersion": "1.10", "softwareVersion": "4.2.0.1"}'


def slide_info(slide: str) -> bytes:
    return (b'{"id": "%s", "isStreamable": true, "imageSize": {"width": 1, "height": 1}, '
            b'"tileSize": {"width": 1, "height": 1}}' % slide.encode())


def test_no_slide_gets_another_slides_metadata(make_client: Callable[..., Any], scripted: Any) -> None:
    """A server that repeats an answer (a late duplicate) on a kept-alive connection: each slide's
    metadata is still its own, on both clients."""
    plays = [
        Play(body=API_INFO),
        Play(body=slide_info("slide-a"), after=answer(slide_info("slide-a"))),  # the duplicate
        Play(body=slide_info("slide-b")),
        Play(body=slide_info("slide-c")),
    ]
    server = scripted(plays)
    client = make_client(server)
    assert client.get_image_metadata("slide-a").id == "slide-a"
    server.read(2)  # the duplicate goes out now, onto the idle connection
    server.wait_answered(2)
    assert client.get_image_metadata("slide-b").id == "slide-b", server.seen
    assert client.get_image_metadata("slide-c").id == "slide-c"
    assert [target for _, target in server.seen] == ["/info", "/slides/slide-a/info", "/slides/slide-b/info",
                                                     "/slides/slide-c/info"]


# --- found in review (issue #25) -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
def test_over_tls_a_stray_in_the_last_record_of_a_large_body_retires_the_connection(
    transport_name: str, scripted: Any, tls_ca_path: Any, stream: bool,
) -> None:
    """A body over 1 MiB and a stray answer in one write: over TLS the stray shares the body's
    last record, so the client's TLS layer has decrypted it with the end of the body and the
    socket under it has nothing left to poll. The connection must still not be reused."""
    ca, ca_path = tls_ca_path
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    body = bytes(range(256)) * (2 * MiB // 256)
    server = scripted([Play(body=body, frame=lambda b: answer(b) + STRAY)], tls=context)
    got = exchange(transport_name, server, ["/a", "/b", "/c"], stream=stream, options=TransportOptions(verify=ca_path))
    assert got == [(200, body), *honest("/b", "/c")]


@pytest.mark.parametrize("interim", [
    b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 199 Unassigned\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 150 Unassigned\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
], ids=["100-length", "103-length", "100-chunked", "199-length", "150-chunked"])
def test_an_interim_answer_with_a_body_adds_nothing_to_the_body(transport_name: str, scripted: Any,
                                                                interim: bytes) -> None:
    """A 1xx answer has no content (RFC 9110 §15.2) whatever its fields say. A server that sends
    one with ``Content-Length: 5`` (or chunked) and five bytes: those bytes are never part of the
    real answer's body (refused as a malformed answer, as http.client and h11 do, or dropped).
    llhttp read a body for a 1xx it does not know (``199``) and the trio client prepended it."""
    server = scripted([Play(before=interim)])
    try:
        got = exchange(transport_name, server, ["/a"])
    except RemoteProtocolError:
        return
    assert got == honest("/a")


@pytest.mark.parametrize("upgrade", [b"Upgrade: websocket\r\nConnection: upgrade\r\n", b""], ids=["upgrade", "bare"])
def test_a_101_is_refused_and_its_connection_is_never_reused(transport_name: str, scripted: Any, upgrade: bytes) -> None:
    """After ``101 Switching Protocols`` the connection speaks another protocol (RFC 9110 §15.2.2)
    the SDK never asked for: refused on both clients, as a protocol error, and the connection
    dropped (urllib3 took the 101 as an answer with an empty body and pooled its connection)."""
    server = scripted([Play(before=b"HTTP/1.1 101 Switching Protocols\r\n" + upgrade + b"\r\n")])
    with pytest.raises(RemoteProtocolError):
        exchange(transport_name, server, ["/a"])
    assert exchange(transport_name, server, ["/b"]) == honest("/b")
    assert server.connections == 2


@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
def test_a_204_with_a_content_length_has_no_body(transport_name: str, scripted: Any, stream: bool) -> None:
    """A 204 never has content (RFC 9110 §15.3.5), whatever ``Content-Length`` it carries. The trio
    client, asked to stream, waited for the five bytes the field announced (a read timeout, or
    the next answer's first bytes taken as this body); it must end the body where the parser
    ends the message."""
    server = scripted([Play(frame=lambda b: b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")])
    got = exchange(transport_name, server, ["/a", "/b", "/c"], stream=stream, options=TransportOptions(read_timeout=5))
    assert got == [(204, b""), *honest("/b", "/c")]


@pytest.mark.parametrize("stream", [False, True], ids=["read", "streamed"])
def test_over_tls_a_stray_in_its_own_record_right_after_a_large_body_retires_the_connection(
    transport_name: str, scripted: Any, tls_ca_path: Any, stream: bool,
) -> None:
    """The stray in a TLS record of its own, written right after a body over 1 MiB: trio's TLS
    stream reads it off the socket (still encrypted) with the body's last record, where neither
    the socket poll nor ``pending()`` sees it (the trio client took it as /b's answer). The
    blocking client: http.client's reader takes it and dies with the answer."""
    ca, ca_path = tls_ca_path
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    body = bytes(range(256)) * (2 * MiB // 256)
    server = scripted([Play(body=body, then=STRAY)], tls=context)
    got = exchange(transport_name, server, ["/a", "/b", "/c"], stream=stream, options=TransportOptions(verify=ca_path))
    assert got == [(200, body), *honest("/b", "/c")]
