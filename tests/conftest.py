"""Shared fixtures: the real mock server on loopback, and a raw server that sends canned bytes."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from sectra_mock import MockSectraServer

TOKEN = "test-token-5ecret"


@pytest.fixture
def mock() -> Iterator[MockSectraServer]:
    """A running mock (thread mode) with a known token; it invents any slide it is asked for
    (these tests exercise the protocol on arbitrary slide ids; a fresh mock would 404 them)."""
    server = MockSectraServer(token=TOKEN, invent_slides=True)
    with server.run(port=0):
        yield server


@pytest.fixture
def make_mock(make_sectra_mock: Callable[..., MockSectraServer]) -> Callable[..., MockSectraServer]:
    """The plugin's ``make_sectra_mock`` with this suite's token unless another is given."""

    def make(**kwargs: object) -> MockSectraServer:
        kwargs.setdefault("token", TOKEN)
        kwargs.setdefault("invent_slides", True)
        return make_sectra_mock(**kwargs)

    return make


@dataclass
class Canned:
    """What the raw server answers: status, headers, body chunks, and whether to cut the connection."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    cut_after_chunks: bool = False


class RawServer:
    """A loopback HTTP server answering every request with ``self.routes[path]`` (or 404).

    For bytes the real mock never sends: malformed JSON, hostile multipart, dropped connections.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Canned] = {}
        #: (path, lower-case request headers) of every request, in order.
        self.requests: list[tuple[str, dict[str, str]]] = []
        routes, requests = self.routes, self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                requests.append((path, {k.lower(): v for k, v in self.headers.items()}))
                canned = routes.get(path, Canned(404, {}, [b'{"error": "no"}']))
                self.send_response(canned.status)
                headers = dict(canned.headers)
                if not canned.cut_after_chunks and "Transfer-Encoding" not in headers:
                    headers.setdefault("Content-Length", str(sum(map(len, canned.chunks))))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                for chunk in canned.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                if canned.cut_after_chunks:
                    self.close_connection = True

            do_PUT = do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            # The handshake happens in the handler thread on first read, never in accept().
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True, do_handshake_on_connect=False)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.route("/info", 200, {"Content-Type": "application/json"},
                   b'{"apiVersion": "1.10", "softwareVersion": "4.2.0.1"}')

    def route(self, path: str, status: int, headers: dict[str, str], *chunks: bytes,
              cut: bool = False) -> None:
        """Answer ``path`` with these bytes; ``cut`` drops the connection after them."""
        self.routes[path] = Canned(status, headers, list(chunks), cut)


#: How often a test server's loop looks for shutdown(): socketserver's default (0.5 s) was half a
#: second of every test's teardown.
POLL_INTERVAL = 0.02


def _serving(server: RawServer) -> Iterator[RawServer]:
    thread = threading.Thread(target=server.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def raw_server() -> Iterator[RawServer]:
    """A running :class:`RawServer`."""
    yield from _serving(RawServer())


@pytest.fixture
def tls_ca_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[trustme.CA, str]]:
    """A throwaway certificate authority, and the path of its certificate in PEM."""
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    yield ca, str(path)


@pytest.fixture
def tls_raw_server(tls_ca_path: tuple[trustme.CA, str]) -> Iterator[RawServer]:
    """A running :class:`RawServer` on https, its certificate for 127.0.0.1 issued by ``tls_ca_path``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca_path[0].issue_cert("127.0.0.1").configure_cert(context)
    yield from _serving(RawServer(tls=context))
