"""Both transports through an HTTP proxy on loopback (#17 item 3): plain http in absolute form,
https with CONNECT, the environment's HTTP(S)_PROXY / NO_PROXY, and credentials for the proxy.

The proxy below maps every host name to 127.0.0.1, so a client can ask for ``pacs.example`` (a name
that resolves nowhere): a request that arrives proves it went through the proxy, and one that
bypasses the proxy fails to resolve.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

import pytest
import trustme

from sectra_core.errors import ConnectError
from sectra_mock import MockSectraServer

from ..conftest import RawServer, _serving

HOST = "pacs.example"  # reserved name (RFC 2606): never resolves, so only the proxy can reach it


@dataclass
class Seen:
    method: str
    target: str
    authorization: str | None


class LoopbackProxy:
    """A tiny forwarding proxy: ``CONNECT host:port`` tunnels, absolute-form requests forwarded.

    Every host name is sent to 127.0.0.1 (same port). ``require_auth``: answer 407 unless the
    request carries that ``Proxy-Authorization`` value.
    """

    def __init__(self, require_auth: str | None = None) -> None:
        self.seen: list[Seen] = []
        self.require_auth = require_auth
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head, rest = head.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = dict(line.split(": ", 1) for line in lines[1:])
            auth = next((v for k, v in headers.items() if k.lower() == "proxy-authorization"), None)
            self.seen.append(Seen(method, target, auth))
            if self.require_auth is not None and auth != self.require_auth:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            if method == "CONNECT":
                port = int(target.rsplit(":", 1)[1])
                upstream = socket.create_connection(("127.0.0.1", port))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                assert target.startswith("http://"), target  # absolute form, RFC 9112 §3.2.2
                authority, _, path = target[len("http://"):].partition("/")
                port = int(authority.rsplit(":", 1)[1]) if ":" in authority else 80
                upstream = socket.create_connection(("127.0.0.1", port))
                kept = [line for line in lines[1:] if not line.lower().startswith("proxy-authorization")]
                first = f"{method} /{path} {version}"
                rest = ("\r\n".join([first, *kept]) + "\r\n\r\n").encode("latin-1") + rest
            with upstream:
                if rest:
                    upstream.sendall(rest)
                self._pipe(client, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        def copy(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        other = threading.Thread(target=copy, args=(b, a), daemon=True)
        other.start()
        copy(a, b)
        other.join(10)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[LoopbackProxy]:
    p = LoopbackProxy()
    yield p
    p.close()


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _via(host: str, server_url: str) -> SimpleNamespace:
    """``server_url`` with its host replaced by ``host`` (as ``make_client`` wants a ``.url``)."""
    scheme, _, rest = server_url.partition("://")
    port = rest.split("/", 1)[0].rsplit(":", 1)[1]
    return SimpleNamespace(url=f"{scheme}://{host}:{port}")


def test_plain_http_through_an_explicit_proxy(make_client: Callable[..., Any], mock: MockSectraServer,
                                              proxy: LoopbackProxy) -> None:
    client = make_client(_via(HOST, mock.url), proxy=proxy.url, allow_http=True)
    assert client.get_image_metadata("slide-1").id == "slide-1"
    assert [s.method for s in proxy.seen][:1] == ["GET"]
    assert proxy.seen[0].target.startswith(f"http://{HOST}:")  # absolute form: the proxy saw the URL


def test_https_through_the_environment_proxy_with_connect(
    make_client: Callable[..., Any], proxy: LoopbackProxy, tls_ca_path: tuple[trustme.CA, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ca, ca_file = tls_ca_path
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)  # the certificate names the host the client asked for
    server = RawServer(tls=context)
    for running in _serving(server):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        client = make_client(_via(HOST, running.url), verify=ca_file)
        assert client.get_info().api_version == "1.10"
    assert proxy.seen and proxy.seen[0].method == "CONNECT" and proxy.seen[0].target.startswith(f"{HOST}:")
    assert server.requests and server.requests[0][0] == "/info"  # TLS end to end, through the tunnel


def test_no_proxy_and_loopback_bypass_the_environment_proxy(
    make_client: Callable[..., Any], mock: MockSectraServer, proxy: LoopbackProxy, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    # Loopback never goes to a proxy from the environment (urllib's proxy_bypass_environment would
    # send it there unless NO_PROXY names it): the local mock keeps working.
    assert make_client(mock, allow_http=True).get_info().api_version == "1.10"
    assert proxy.seen == []
    # Through the proxy while NO_PROXY does not name the host ...
    monkeypatch.setenv("NO_PROXY", "other.example,.elsewhere")
    assert make_client(_via(HOST, mock.url), allow_http=True).get_info().api_version == "1.10"
    assert len(proxy.seen) == 1, proxy.seen
    # ... and straight to the host (which does not resolve) once it does.
    monkeypatch.setenv("NO_PROXY", "other.example, pacs.example")
    with pytest.raises(ConnectError):
        make_client(_via(HOST, mock.url), allow_http=True, connect_timeout=5).get_info()
    assert len(proxy.seen) == 1
    # An explicit proxy="" overrides the environment too.
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(ConnectError):
        make_client(_via(HOST, mock.url), allow_http=True, proxy="", connect_timeout=5).get_info()
    assert len(proxy.seen) == 1


def test_proxy_credentials_are_sent_and_a_407_is_explained(
    make_client: Callable[..., Any], mock: MockSectraServer, transport_name: str,
) -> None:
    guarded = LoopbackProxy(require_auth="Basic dXNlcjpwQHNz")  # user:p@ss
    try:
        port = guarded.url.rsplit(":", 1)[1]
        ok = make_client(_via(HOST, mock.url), proxy=f"http://user:p%40ss@127.0.0.1:{port}", allow_http=True)
        assert ok.get_info().api_version == "1.10"
        assert guarded.seen[0].authorization == "Basic dXNlcjpwQHNz"
        assert "p%40ss" not in repr(ok) and "p@ss" not in repr(ok)
    finally:
        guarded.close()


def test_a_proxy_refusing_the_tunnel_is_a_connect_error_naming_it(
    make_client: Callable[..., Any], proxy: LoopbackProxy,
) -> None:
    guarded = LoopbackProxy(require_auth="Basic c29tZW9uZTplbHNl")
    try:
        client = make_client(SimpleNamespace(url=f"https://{HOST}:9"), proxy=guarded.url, connect_timeout=5)
        with pytest.raises(ConnectError, match="407"):
            client.get_info()
        assert guarded.seen[0].method == "CONNECT"
    finally:
        guarded.close()
