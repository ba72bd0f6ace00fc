"""Fixtures for the mock's own tests: a minimal app the mock can call."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.conftest import POLL_INTERVAL


class App:
    """A minimal webhook answering with a fixed (status, body), recording what it received."""

    def __init__(self, status: int, body: bytes) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                outer.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True).start()


@pytest.fixture
def app_factory() -> Iterator[Callable[[int, bytes], App]]:
    apps: list[App] = []

    def make(status: int, body: bytes) -> App:
        apps.append(App(status, body))
        return apps[-1]

    yield make
    for a in apps:
        a.httpd.shutdown()
        a.httpd.server_close()
