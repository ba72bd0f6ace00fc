"""Issue #12 hole 5, the app's share: invocation bodies are capped and must arrive in time.

The memory tests run the app in a subprocess and read its peak RSS (``VmHWM``) from /proc, before
and after the attack: never in-process, never absolute times.
"""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sectra_client.app import AnalysisApp, AppServer, create_app

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024

APP_SCRIPT = """
import sys
from sectra_client.app import AnalysisApp, AppServer, create_app
app = AnalysisApp(application_id="x", display_name="X", manufacturer="M", trusted_callbacks=["https://pacs.example.org"])
with AppServer(create_app(app, url_prefix="/hook")).run() as base:
    print(base + "/hook", flush=True)
    sys.stdin.read()
"""


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.fixture
def app_process() -> Iterator[tuple[subprocess.Popen[str], str]]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc to read a subprocess's peak RSS")
    proc = subprocess.Popen([sys.executable, "-c", APP_SCRIPT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), url
        yield proc, url
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(20)
        proc.stdout.close()


def send_body(url: str, headers: dict[str, str], body_size: int, *, chunked: bool, body: bytes = b"") -> tuple[int, int]:
    """POST ``body_size`` bytes of JSON-ish filler; returns (status answered, bytes sent before the
    answer arrived). Stops sending as soon as the server answers or closes."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    try:
        head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        chunk, sent = b"x" * MiB, 0
        while sent < body_size:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came (or the connection closed): stop, as a client would
            data = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk
            try:
                sock.sendall(data)
            except OSError:
                break
            sent += len(chunk)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        sock.settimeout(30)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
        return int(answer.split()[1]), sent
    finally:
        sock.close()


@pytest.mark.parametrize(("name", "size", "framing"), [
    ("600 MB claimed", 600_000_000, "length"),
    ("100 MiB honest length", 100 * MiB, "length"),
    ("100 MiB chunked", 100 * MiB, "chunked"),
])
def test_large_invocation_bodies_get_413_unbuffered(
    app_process: tuple[subprocess.Popen[str], str], name: str, size: int, framing: str,
) -> None:
    """Before: the app buffered up to 512 MB per body (100 MiB → +200 MB peak RSS, answered only
    once all had arrived). After: 413 after at most 1 MiB (plus socket buffers) and a flat RSS."""
    proc, url = app_process
    assert send_body(url, {"Content-Length": "2"}, 0, chunked=False, body=b"{}")[0] == 400  # warm up: imports
    before = peak_rss(proc.pid)
    headers = {"Transfer-Encoding": "chunked"} if framing == "chunked" else {"Content-Length": str(size)}
    status, sent = send_body(url, headers, min(size, 100 * MiB), chunked=framing == "chunked")
    growth = peak_rss(proc.pid) - before
    assert status == 413, name
    assert sent < 32 * MiB, f"{name}: {sent / MiB:.0f} MiB went in before the answer"
    assert growth < 24 * MiB, f"{name}: the app's peak RSS grew by {growth / MiB:.0f} MiB"


def make_app() -> AnalysisApp:
    return AnalysisApp(application_id="x", display_name="X", manufacturer="M", trusted_callbacks=["https://pacs.example.org"])


def trickle(url: str, *, seconds: float) -> tuple[bytes, float]:
    """POST a 1000-byte body at one byte a second; returns what the server said and when it hung up."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    try:
        sock.sendall(f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{".encode())
        start = time.monotonic()
        answer = b""
        while time.monotonic() - start < seconds:
            if select.select([sock], [], [], 1.0)[0]:
                data = sock.recv(4096)
                answer += data
                if not data:
                    return answer, time.monotonic() - start
                continue
            try:
                sock.sendall(b" ")
            except OSError:
                return answer, time.monotonic() - start
        return answer, float("inf")
    finally:
        sock.close()


def test_a_trickled_body_is_cut_by_the_server() -> None:
    """Before: a body trickled at 1 byte/s held the connection (and the request) forever. After:
    the server answers 408 and hangs up at ``body_timeout``."""
    server = AppServer(create_app(make_app(), url_prefix="/hook"), body_timeout=2.0)
    with server.run() as base:
        answer, closed_after = trickle(f"{base}/hook", seconds=12)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert closed_after < 10


def test_a_trickled_body_is_cut_by_the_app_under_any_server() -> None:
    """The same under a server without the deadline (``hypercorn module:asgi`` run by hand): the
    app's own ``body_timeout`` (Quart's BODY_TIMEOUT) answers 408 and closes."""
    server = AppServer(create_app(make_app(), url_prefix="/hook", body_timeout=2.0), body_timeout=None)
    with server.run() as base:
        answer, closed_after = trickle(f"{base}/hook", seconds=12)
    assert answer.startswith(b"HTTP/1.1 408") and b"too slowly" in answer, answer[:200]
    assert closed_after < 10


def test_limits_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sectra_core.errors import ConfigurationError

    assert make_app().max_invocation_bytes == MiB
    monkeypatch.setenv("SECTRA_MAX_INVOCATION_BYTES", str(8 * MiB))
    assert make_app().max_invocation_bytes == 8 * MiB
    assert AnalysisApp(application_id="x", display_name="X", manufacturer="M", max_invocation_bytes=10).max_invocation_bytes == 10
    monkeypatch.setenv("SECTRA_MAX_INVOCATION_BYTES", "lots")
    with pytest.raises(ConfigurationError, match="SECTRA_MAX_INVOCATION_BYTES"):
        make_app()
    asgi = create_app(AnalysisApp(application_id="x", display_name="X", manufacturer="M", max_invocation_bytes=5000), body_timeout=7)
    assert asgi.config["MAX_CONTENT_LENGTH"] == 5000 and asgi.config["BODY_TIMEOUT"] == 7


def test_bodyless_requests_keep_their_connection() -> None:
    """The body deadline marks an answer ``Connection: close`` only when a body was still
    coming: a GET (no Content-Length, no Transfer-Encoding) keeps keep-alive, on the mock and on
    apps alike (they share the runner). Before: every answer closed its connection."""
    import http.client

    from sectra_mock import MockSectraServer

    mock = MockSectraServer(token="t")
    with mock.run(port=0):
        host, port = mock.url.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        sockets = []
        for _ in range(3):
            conn.request("GET", "/info", headers={"Authorization": "Bearer t"})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200 and answer.getheader("connection") != "close"
            sockets.append(conn.sock)
        conn.close()
    assert sockets[0] is not None and all(sock is sockets[0] for sock in sockets)
