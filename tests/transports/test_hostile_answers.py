"""Hostile answers from a raw-socket server on loopback (issue #12, holes 2, 5, 9 and 11).

Gzip bombs, a JSON answer with a 1 GiB string, a million multipart parts, digits that are not
ASCII, repeated headers and a base URL with a space. Memory is measured as the peak RSS of a
child process running the client (``os.wait4``), never in this process.
"""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from sectra_core.errors import (
    ConfigurationError,
    DecodeError,
    MultipartError,
    RateLimitedError,
    RemoteProtocolError,
    ResponseTooLargeError,
    ServerError,
)
from sectra_core.http import HttpRequest, ResponseLimits
from sectra_core.retry import NO_RETRY, RetryPolicy
from sectra_transports.trio import TrioTransport
from sectra_transports.urllib3 import Urllib3Transport
from tests.transports.conftest import ALL_PARSERS

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05, deadline=10.0)
INFO = b'{"id": "s", "isStreamable": true, "imageSize": {"width": 1, "height": 1}, "tileSize": {"width": 1, "height": 1}}'

#: An answer: the status line and headers (without the blank line), and the body's chunks.
Answer = tuple[list[str], Iterable[bytes]]


@pytest.fixture(params=ALL_PARSERS)
def transport_name(request: pytest.FixtureRequest) -> str:
    """Every client test here also runs on the trio transport's fallback parser (h11)."""
    return str(request.param)


class Hostile:
    """A loopback HTTP/1.1 server written on raw sockets: it sends exactly the bytes it is told,
    repeated headers and lying lengths included. ``answer(target)`` gives each answer;
    ``stall`` keeps the connection open after it (until the server stops) instead of closing."""

    def __init__(self, answer: Callable[[str], Answer], *, stall: bool = False) -> None:
        self.answer = answer
        self.stall = stall
        self.targets: list[str] = []
        #: Each request's head (request line and headers), lower-cased.
        self.heads: list[str] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            target = data.split(b" ", 2)[1].decode("latin-1")
            self.targets.append(target)
            self.heads.append(data.split(b"\r\n\r\n")[0].decode("latin-1").lower())
            head, body = self.answer(target)
            try:
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                for chunk in body:
                    conn.sendall(chunk)
                if self.stall:
                    self._stop.wait(30)
            except OSError:
                pass  # the client hung up: what a client under attack should do

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def hostile() -> Iterator[Callable[..., Hostile]]:
    made: list[Hostile] = []

    def make(answer: Callable[[str], Answer], **kw: Any) -> Hostile:
        made.append(Hostile(answer, **kw))
        return made[-1]

    yield make
    for server in made:
        server.close()


def fixed(status: str, headers: list[str], body: Iterable[bytes] = (), *, info: bool = False) -> Callable[[str], Answer]:
    """Every request gets this answer (``info``: except /info, which gets a valid one)."""

    def answer(target: str) -> Answer:
        if info and target.endswith("/info") and "/slides/" not in target:
            return ["HTTP/1.1 200 OK", "Content-Type: application/json", f"Content-Length: {len(API_INFO)}",
                    "Connection: close"], [API_INFO]  # one request per connection
        return [f"HTTP/1.1 {status}", *headers], body

    return answer


API_INFO = b'{"apiVersion": "1.10", "softwareVersion": "4.2.0.1"}'


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed (about 1 KiB per MiB): one MiB compressed once, as
    many gzip members as it takes (a gzip stream is a series of members, RFC 1952 §2.2), instead of
    deflating a GiB for each test (seconds of CPU on the loaded 2-core machine)."""
    member = zlib.compress(bytes(MiB), 9, wbits=31)
    return member * (size // MiB)


def child_peak(code: str, *args: str) -> tuple[str, float]:
    """Run ``code`` in a fresh interpreter; its output and its peak RSS in MiB (from ``wait4``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=out, stderr=subprocess.STDOUT, env=env)
        watchdog = threading.Timer(240, proc.kill)
        watchdog.start()
        try:
            _pid, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    assert proc.returncode == 0, text
    return text.strip(), usage.ru_maxrss / 1024  # KiB on Linux


CHILD = """
import sys, trio
from sectra_client import SectraClient
from sectra_transports.trio import AsyncSectraClient
from sectra_core.errors import SectraError
url, transport, call = sys.argv[1:4]

def sync():
    with SectraClient(url, "t", api_version="5.0") as client:
        return eval(call)

async def main():
    async with AsyncSectraClient(url, "t", api_version="5.0") as client:
        return await eval(call)

try:
    sync() if transport == "urllib3" else trio.run(main)
except SectraError as exc:
    print(type(exc).__name__, exc)
else:
    print("OK")
"""

SLIDE_INFO = 'client.get_image_metadata("s")'


_BASELINES: dict[str, float] = {}


def baseline_mib(hostile: Callable[..., Hostile], transport: str) -> float:
    """The peak RSS of the same child after a small, valid answer (measured once per transport:
    the three memory tests compare with the same child)."""
    if transport not in _BASELINES:
        ok = hostile(fixed("200 OK", ["Content-Type: application/json", f"Content-Length: {len(INFO)}"], [INFO]))
        out, peak = child_peak(CHILD, ok.url, transport, SLIDE_INFO)
        assert out == "OK"
        _BASELINES[transport] = peak
    return _BASELINES[transport]


# --- hole 2: gzip bombs ----------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["urllib3", "trio"])
def test_gzip_bomb_leaves_memory_flat(hostile: Callable[..., Hostile], transport: str) -> None:
    """1 GiB of zeros in 1 MB of gzip, on a JSON endpoint. Before: urllib3 inflated all of it
    (peak RSS 2,083 MiB, 74 MiB for a small answer); now both clients refuse it unread."""
    bomb = gzip_bomb(1024 * MiB)
    server = hostile(fixed("200 OK", ["Content-Type: application/json", "Content-Encoding: gzip",
                                      f"Content-Length: {len(bomb)}"], [bomb]))
    out, peak = child_peak(CHILD, server.url, transport, SLIDE_INFO)
    base = baseline_mib(hostile, transport)
    print(f"{transport}: gzip bomb peak RSS {peak:.0f} MiB, baseline {base:.0f} MiB")
    assert out.startswith("DecodeError") and "Content-Encoding 'gzip'" in out, out
    assert peak - base < 32, f"{peak - base:.0f} MiB more than a small answer"


def test_compressed_answers_get_one_error_on_both_clients(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    body = gzip.compress(INFO)
    server = hostile(fixed("200 OK", ["Content-Type: application/json", "Content-Encoding: gzip",
                                      f"Content-Length: {len(body)}"], [body], info=True))
    with pytest.raises(DecodeError, match=r"GET /slides/\{slide_id\}/info: the answer came with Content-Encoding 'gzip'"):
        make_client(server).get_image_metadata("s")


def test_every_request_asks_for_identity(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """Before: the trio client sent no Accept-Encoding (any coding acceptable, RFC 9110 §12.5.3)."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", f"Content-Length: {len(INFO)}"], [INFO], info=True))
    client = make_client(server)
    client.get_info()
    client.get_image_metadata("s")
    assert len(server.heads) == 3 and all("\r\naccept-encoding: identity" in head for head in server.heads)


# --- hole 5: size limits ---------------------------------------------------------------------


def _huge_json(size: int) -> Iterator[bytes]:
    yield b'{"id": "'
    block = b"a" * MiB
    for _ in range(size // MiB):
        yield block
    yield INFO[len(b'{"id": "s'):]


@pytest.mark.parametrize("transport", ["urllib3", "trio"])
def test_a_1_gib_json_string_is_refused_early(hostile: Callable[..., Hostile], transport: str) -> None:
    """No Content-Length (read to the close), so the cap is counted while reading. Before: the
    whole GiB was read (peak RSS 2,084 MiB sync, 2,081 MiB trio; 74 MiB for a small answer)."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", "Connection: close"], _huge_json(1024 * MiB)))
    out, peak = child_peak(CHILD, server.url, transport, SLIDE_INFO)
    base = baseline_mib(hostile, transport)
    print(f"{transport}: 1 GiB JSON string peak RSS {peak:.0f} MiB, baseline {base:.0f} MiB")
    assert out.startswith("ResponseTooLargeError") and "67108864-byte limit for JSON" in out, out
    assert "SECTRA_MAX_JSON_BYTES" in out and "json_bytes" in out
    assert peak - base < 200, f"{peak - base:.0f} MiB more than a small answer"  # the 64 MiB cap, held once or twice


def test_a_declared_length_past_the_limit_is_refused_unread(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """The server declares 1 GiB and then sends nothing: refused at once, not after a read timeout."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", f"Content-Length: {1024 * MiB}"], info=True), stall=True)
    start = time.monotonic()
    with pytest.raises(ResponseTooLargeError, match="declares 1073741824 bytes"):
        make_client(server, read_timeout=5, retry=NO_RETRY).get_image_metadata("s")
    assert time.monotonic() - start < 4


def test_binary_answers_have_their_own_limit(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    tile = b"\xff" * (2 * MiB)
    server = hostile(fixed("200 OK", ["Content-Type: image/jpeg", "Connection: close"], [tile], info=True))
    assert make_client(server).get_tile("s", 0, 0, 0) == tile  # 2 MiB is fine by default (256 MiB)
    small = ResponseLimits(binary_bytes=MiB)
    with pytest.raises(ResponseTooLargeError, match="1048576-byte limit for binary .*SECTRA_MAX_BINARY_BYTES"):
        make_client(server, limits=small).get_tile("s", 0, 0, 0)
    assert make_client(server, limits=small).get_info().api_version == "1.10"  # JSON keeps its own


def test_error_bodies_are_read_only_in_part(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """A 500 that declares 1 GiB, sends 100 KiB and stalls. Before: the client waited for the rest
    (TimeoutError after read_timeout); now it reads 64 KiB for the excerpt and reports the 500."""
    server = hostile(fixed("500 Internal Server Error", [f"Content-Length: {1024 * MiB}"], [b"e" * 100_000], info=True), stall=True)
    start = time.monotonic()
    with pytest.raises(ServerError, match="HTTP 500"):
        make_client(server, read_timeout=5, retry=NO_RETRY).get_image_metadata("s")
    assert time.monotonic() - start < 4


def _parts(n: int) -> Iterator[bytes]:
    batch = []
    for i in range(n):
        batch.append(b'--XX\r\nContent-Disposition: attachment; filename="f%07d"\r\n\r\nx\r\n' % i)
        if len(batch) == 10_000:
            yield b"".join(batch)
            batch = []
    yield b"".join(batch) + b"--XX--\r\n"


STREAM_PARTS = """
import sys, trio
from sectra_client import SectraClient
from sectra_transports.trio import AsyncSectraClient
from sectra_core.errors import SectraError
from sectra_core.io.streaming import FileStarted
url, transport = sys.argv[1:3]
count = 0
try:
    if transport == "urllib3":
        with SectraClient(url, "t", api_version="5.0") as client, client.stream_slide_files("s") as files:
            for event in files:
                count += isinstance(event, FileStarted)
    else:
        async def main():
            global count
            async with AsyncSectraClient(url, "t", api_version="5.0") as client, client.stream_slide_files("s") as files:
                async for event in files:
                    count += isinstance(event, FileStarted)
        trio.run(main)
except SectraError as exc:
    print(type(exc).__name__, count, exc)
else:
    print("OK", count)
"""


@pytest.mark.parametrize("transport", ["urllib3", "trio"])
def test_a_million_parts_stop_at_the_part_limit(hostile: Callable[..., Hostile], transport: str) -> None:
    """1,000,000 tiny files in one multipart answer. Before: every part copied the rest of its
    chunk, and the queued events held the copies (peak RSS 8,129 MiB; the child was still busy
    after 240 s); now the 100,001st part is refused, and a chunk is never copied per part."""
    server = hostile(fixed("200 OK", ["Content-Type: multipart/related; boundary=XX", "Connection: close"], _parts(1_000_000)))
    out, peak = child_peak(STREAM_PARTS, server.url, transport)
    base = baseline_mib(hostile, transport)
    print(f"{transport}: 1M parts peak RSS {peak:.0f} MiB, baseline {base:.0f} MiB")
    kind, seen, message = out.split(" ", 2)
    assert kind == "ResponseTooLargeError" and "more than 100000 parts" in message, out
    assert 0 < int(seen) <= 100_000  # files announced before the refusal (a chunk's worth may be cut)
    assert peak - base < 64


def test_the_part_limit_is_configurable(make_client: Callable[..., Any], hostile: Callable[..., Hostile],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTRA_MAX_PARTS", "5")
    server = hostile(fixed("200 OK", ["Content-Type: multipart/related; boundary=XX", "Connection: close"], _parts(8), info=True))
    with pytest.raises(ResponseTooLargeError, match="more than 5 parts; set SECTRA_MAX_PARTS"):
        make_client(server).download_slide_files("s", tmp_path)
    left = list(tmp_path.iterdir())  # only complete files of the first five: no partial, no temporary
    assert {p.name for p in left} <= {f"f{i:07d}" for i in range(5)} and all(p.read_bytes() == b"x" for p in left)


# --- hole 9: digits that are not ASCII, targets that are not valid ------------------------------


def test_retry_after_superscript_two(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """Before: ValueError (``"²".isdigit()`` is True, ``float("²")`` fails); now ignored, retried."""
    server = hostile(fixed("503 Service Unavailable", ["Retry-After: ²", "Content-Length: 0"], info=True))
    with pytest.raises(ServerError, match="HTTP 503"):
        make_client(server, retry=FAST).get_image_metadata("s")
    assert server.targets.count("/slides/s/info") == FAST.attempts


@pytest.mark.parametrize("length", ["²", "9" * 5000])
def test_part_content_length_not_digits(make_client: Callable[..., Any], hostile: Callable[..., Hostile],
                                        tmp_path: Path, length: str) -> None:
    """Before: ValueError from int() (a superscript, or past Python's 4,300-digit limit)."""
    body = f'--XX\r\nContent-Disposition: attachment; filename="a.dcm"\r\nContent-Length: {length}\r\n\r\nx\r\n--XX--\r\n'.encode()
    server = hostile(fixed("200 OK", ["Content-Type: multipart/related; boundary=XX", f"Content-Length: {len(body)}"], [body], info=True))
    with pytest.raises(MultipartError, match="content-length header .* is not a number of bytes"):
        make_client(server).download_slide_files("s", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_response_content_length_not_digits(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """Before: urllib3 raised ValueError (``int("²")`` in its body reader); h11 already refused it."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", "Content-Length: ²"], [INFO], info=True))
    with pytest.raises(RemoteProtocolError):
        make_client(server, retry=NO_RETRY).get_image_metadata("s")


def test_a_base_url_with_a_space(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """Before: h11's LocalProtocolError on trio (urllib3 quoted the space itself)."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", f"Content-Length: {len(API_INFO)}"], [API_INFO]))

    class At:
        url = server.url + "/my api/é"

    assert make_client(At).get_info().api_version == "1.10"
    assert server.targets and set(server.targets) == {"/my%20api/%C3%A9/info"}  # the same bytes from both


def test_a_header_value_with_a_line_break(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """Before: a bare ValueError from http.client, h11's LocalProtocolError on trio."""
    server = hostile(fixed("200 OK", ["Content-Type: application/json", f"Content-Length: {len(API_INFO)}"], [API_INFO]))
    with pytest.raises(ConfigurationError, match="X-Sectra-SoftwareVersion header value holds a line break"):
        make_client(server, app_version="1.0\r\nX-Evil: 1").get_info()
    assert server.targets == []


@pytest.mark.parametrize("method", ["GET /x HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET", "GE T", ""])
def test_a_method_that_is_no_token_is_refused_before_sending(method: str) -> None:
    """The trio transport writes the request line itself (h11 used to refuse such a method): a
    plugin's operation with a space or line break in its method must not split the request."""
    with pytest.raises(ConfigurationError, match="not a valid HTTP method"):
        HttpRequest(method, "http://127.0.0.1:1/x")


# --- hole 11: repeated headers -----------------------------------------------------------------


def test_two_retry_after_headers_mean_the_same_to_both_clients(make_client: Callable[..., Any], hostile: Callable[..., Hostile]) -> None:
    """``Retry-After: 1`` and ``Retry-After: 30``. Before: urllib3 saw "1, 30" (unreadable:
    retried at once, 4 requests), trio saw "30" (past the deadline: 1 request). Now both read
    the longer wait and give up at once."""
    server = hostile(fixed("429 Too Many Requests", ["Retry-After: 1", "Retry-After: 30", "Content-Length: 0"], info=True))
    with pytest.raises(RateLimitedError, match="HTTP 429"):
        make_client(server, retry=FAST).get_image_metadata("s")
    assert server.targets.count("/slides/s/info") == 1


def test_both_transports_present_repeated_headers_alike(hostile: Callable[..., Hostile]) -> None:
    server = hostile(fixed("200 OK", ["X-Dup: a", "X-Dup: b", "x-dup: a", "Content-Length: 0"]))
    sync = Urllib3Transport().handle_request(HttpRequest("GET", server.url + "/x"))
    sync.close()

    async def one() -> dict[str, str]:
        async with TrioTransport() as transport:
            response = await transport.handle_async_request(HttpRequest("GET", server.url + "/x"))
            await response.closer()
        return response.headers

    assert sync.headers["x-dup"] == trio.run(one)["x-dup"] == "a, b"
