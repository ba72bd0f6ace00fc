"""Sockets that keep their timeout in Python (issue #18): the same waits, timeouts and errors as
CPython's sockets, on loopback TCP and through the blocking transport over TLS."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from sectra_core.errors import TimeoutError as SectraTimeout
from sectra_core.http import HttpRequest
from sectra_core.transport import TransportOptions
from sectra_transports._polled_socket import AVAILABLE, PolledSocket, PolledTLSSocket, polled
from sectra_transports.urllib3 import Urllib3Transport

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="no poll(2) here: connections keep CPython's sockets")


@pytest.fixture
def pair() -> Iterator[tuple[PolledSocket, socket.socket]]:
    """A connected loopback pair: the client side polled (timeout 1 s), the server side plain."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        plain = socket.create_connection(listener.getsockname(), timeout=1.0)
        server, _ = listener.accept()
    client = polled(plain)
    assert isinstance(client, PolledSocket)
    yield client, server
    client.close()
    server.close()


def test_the_timeout_is_kept_in_python(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, _ = pair
    assert client.gettimeout() == 1.0
    for value in (5, 0.25, None, 0.0):
        client.settimeout(value)
        assert client.gettimeout() == (None if value is None else float(value))
        assert os.get_blocking(client.fileno()) is False  # the descriptor's flag is never touched again
    client.setblocking(True)
    assert client.gettimeout() is None
    with pytest.raises(ValueError):
        client.settimeout(-1)


def test_the_answer_to_a_request_is_waited_for(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, server = pair
    client.sendall(b"GET / HTTP/1.1\r\n\r\n")
    assert server.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
    threading.Timer(0.2, server.sendall, (b"late answer",)).start()
    buffer = bytearray(100)
    n = client.recv_into(buffer)
    assert buffer[:n] == b"late answer"
    server.sendall(b"more")
    assert client.recv(100) == b"more"  # a later read tries first; the bytes are there


def test_a_receive_times_out(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, _ = pair
    client.settimeout(0.2)
    for receive in (lambda: client.recv_into(bytearray(10)), lambda: client.recv(10)):
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="timed out"):
            receive()
        assert 0.15 < time.monotonic() - start < 1.5


def test_a_receive_without_timeout_waits_as_long_as_it_takes(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, server = pair
    client.settimeout(None)
    threading.Timer(0.3, server.sendall, (b"x",)).start()
    assert client.recv(10) == b"x"


def test_a_zero_timeout_is_non_blocking(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, _ = pair
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(10)
    client.sendall(b"a request")  # a send that fits goes through
    with pytest.raises(BlockingIOError):
        client.recv_into(bytearray(10))


def test_sendall_times_out_when_the_peer_reads_nothing(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, _ = pair
    client.settimeout(0.3)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="timed out"):
        client.sendall(b"x" * 64_000_000)  # far more than both kernel buffers hold
    assert time.monotonic() - start < 3.0


def test_sendall_delivers_every_byte_to_a_slow_reader(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, server = pair
    data = os.urandom(8_000_000)
    received = hashlib.sha256()
    count = [0]

    def read() -> None:
        while count[0] < len(data):
            chunk = server.recv(65536)
            received.update(chunk)
            count[0] += len(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=read)
    reader.start()
    client.sendall(memoryview(data))
    reader.join(10)
    assert count[0] == len(data) and received.digest() == hashlib.sha256(data).digest()


def test_the_end_of_the_stream_and_a_closed_socket(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, server = pair
    server.close()
    assert client.recv(10) == b""
    client.close()
    with pytest.raises(OSError):
        client.sendall(b"x")


# --- through the blocking transport, over TLS ------------------------------------------------------


def _tls_server(ca: trustme.CA, answers: int) -> tuple[str, threading.Event, threading.Thread]:
    """An https server on loopback for one connection: it answers ``answers`` requests, then reads
    the next and says nothing until released."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def serve() -> None:
        with listener, listener.accept()[0] as raw, context.wrap_socket(raw, server_side=True) as tls:
            for n in range(answers + 1):
                data = b""
                while b"\r\n\r\n" not in data:
                    data += tls.recv(4096)
                if n == answers:
                    release.wait(10)
                    return
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"https://127.0.0.1:{listener.getsockname()[1]}", release, thread


def test_tls_connections_poll_after_the_handshake_and_still_time_out(tls_ca_path: tuple[trustme.CA, str]) -> None:
    ca, path = tls_ca_path
    url, release, thread = _tls_server(ca, answers=2)
    transport = Urllib3Transport(TransportOptions(verify=path, read_timeout=0.3))
    try:
        for _ in range(2):
            response = transport.handle_request(HttpRequest("GET", url + "/a"))
            assert (response.status, response.body) == (200, b"{}")
        pool, _ = transport._pool_for(url + "/a")
        sockets = [conn.sock for conn in pool.pool.queue if conn is not None and conn.sock is not None]  # type: ignore[union-attr]
        assert sockets and all(isinstance(sock, PolledTLSSocket) for sock in sockets)
        start = time.monotonic()
        with pytest.raises(SectraTimeout):
            transport.handle_request(HttpRequest("GET", url + "/stalls"))
        assert time.monotonic() - start < 2.0
    finally:
        release.set()
        transport.close()
        thread.join(5)


def _trickling_tls_server(ca: trustme.CA, delay: float) -> tuple[str, threading.Thread]:
    """An https server on loopback for one request whose answer, one TLS record, comes a byte at a
    time, ``delay`` apart: each socket read gets a byte, no read gets a whole record for a while."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        with listener, listener.accept()[0] as raw:
            raw.settimeout(10)

            def pump(step: Callable[[], object]) -> object:
                while True:
                    try:
                        return step()
                    except ssl.SSLWantReadError:
                        raw.sendall(outgoing.read())
                        data = raw.recv(65536)
                        if not data:
                            return None
                        incoming.write(data)

            pump(tls.do_handshake)
            raw.sendall(outgoing.read())  # the end of the handshake and any session tickets, at once
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = pump(lambda: tls.read(65536))
                if not chunk:
                    return
                request += typing.cast(bytes, chunk)
            tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            record = outgoing.read()
            try:
                for i in range(len(record)):
                    raw.sendall(record[i : i + 1])
                    time.sleep(delay)
            except OSError:
                return  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"https://127.0.0.1:{listener.getsockname()[1]}", thread


def test_a_tls_record_that_trickles_in_still_times_out(tls_ca_path: tuple[trustme.CA, str]) -> None:
    # CPython's TLS socket gives one read one timeout, however many pieces of a record arrive
    # within it; a wait that started over at every piece would let a server that sends a byte
    # now and then hold a read for ever (here: a 60-odd byte record, 0.2 s a byte, 0.5 s timeout).
    ca, path = tls_ca_path
    url, thread = _trickling_tls_server(ca, delay=0.2)
    transport = Urllib3Transport(TransportOptions(verify=path, read_timeout=0.5))
    try:
        with pytest.raises(SectraTimeout):
            transport.handle_request(HttpRequest("GET", url + "/a"))
    finally:
        transport.close()
        thread.join(20)


class _LateServer:
    """A loopback HTTP/1.1 server, keep-alive: ``/late`` is answered after ``late`` seconds,
    ``/stall`` sends its head and half its body, then the rest ``late`` seconds later; any other
    path is answered at once with the path as its body. It counts the connections it accepts."""

    def __init__(self, late: float) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.late, self.connections = late, 0
        self.threads: list[threading.Thread] = []
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self.accepted.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            try:
                while True:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        data += chunk
                    head, _, data = data.partition(b"\r\n\r\n")
                    path = head.split(b" ")[1]
                    body = b"the answer to " + path
                    if path == b"/late":
                        time.sleep(self.late)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    if path == b"/stall":
                        conn.sendall(body[:5])
                        time.sleep(self.late)
                        body = body[5:]
                    conn.sendall(body)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # ends a handler waiting for a next request
            except OSError:
                pass  # already closed
        for thread in self.threads:
            thread.join(5)


@pytest.mark.parametrize("path", ["/late", "/stall"])
def test_a_connection_that_timed_out_is_not_used_again(path: str) -> None:
    # The late answer would still arrive on a connection that timed out: the pool must drop it,
    # or the next request would read that answer as its own.
    server = _LateServer(late=0.6)
    transport = Urllib3Transport(TransportOptions(read_timeout=0.2))
    try:
        assert transport.handle_request(HttpRequest("GET", server.url + "/a")).body == b"the answer to /a"
        with pytest.raises(SectraTimeout):
            response = transport.handle_request(HttpRequest("GET", server.url + path, stream=path == "/stall"))
            assert response.readinto is not None  # the socket's reader, read directly
            while response.readinto(bytearray(100)):
                pass
        time.sleep(0.8)  # the late bytes are there now, on the old connection if it were kept
        assert transport.handle_request(HttpRequest("GET", server.url + "/b")).body == b"the answer to /b"
        assert server.connections == 2
    finally:
        transport.close()
        server.close()


def test_the_socket_api_answers_as_cpythons_does(pair: tuple[PolledSocket, socket.socket]) -> None:
    client, _ = pair
    with socket.socket() as plain:
        for value in (2, 0.5, None, 0.0):
            client.settimeout(value)
            plain.settimeout(value)
            # getblocking() and .timeout said False and 0.0 (the descriptor's flag) whatever the timeout
            assert (client.gettimeout(), client.timeout, client.getblocking()) == (
                plain.gettimeout(), plain.timeout, plain.getblocking())
        # refused at once, with CPython's errors, not at the next wait
        refused: list[tuple[Any, type[Exception]]] = [(float("nan"), ValueError), (float("inf"), OverflowError), (1e12, OverflowError),
                           (-1, ValueError), ("5", TypeError)]
        for bad, error in refused:
            with pytest.raises(error):
                plain.settimeout(bad)
            with pytest.raises(error):
                client.settimeout(bad)
        client.settimeout(True)  # an int, as CPython takes it
        assert client.gettimeout() == 1.0


def test_a_duplicate_keeps_the_timeout_of_the_original(pair: tuple[PolledSocket, socket.socket]) -> None:
    # CPython's dup() sets the copy's timeout with an ioctl on the descriptor both share: None
    # made it blocking under the original, whose reads then waited past their timeout.
    client, _ = pair
    client.settimeout(0.2)
    with client.dup() as copy:
        copy.settimeout(None)
        assert copy.gettimeout() is None and os.get_blocking(client.fileno()) is False
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        with pytest.raises(TimeoutError):
            client.recv(10)  # the wait after a send
        with pytest.raises(TimeoutError):
            client.recv(10)  # a read that tries first
