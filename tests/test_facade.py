"""The familiar ``sectra_client`` API, exactly as users of the community package write it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sectra_client import SectraClient
from sectra_client.mock_server import MockSectraServer
from sectra_core.app.messages import parse_invocation
from tests.conftest import POLL_INTERVAL

ROOT = Path(__file__).resolve().parents[1]


def test_readme_snippets_run_as_written(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    received: list[str] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            inv = parse_invocation(dict(self.headers), self.rfile.read(int(self.headers["Content-Length"])))
            with SectraClient(url=inv.callback_info.url, token=inv.callback_info.token) as c:
                stored = c.create_results(inv.application_id, __import__("sectra_client").Result(slide_id=inv.slide_id))
            received.append(inv.slide_id)
            body = __import__("sectra_client").encode(stored)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    app = ThreadingHTTPServer(("localhost", 0), Hook)
    threading.Thread(target=app.serve_forever, args=(POLL_INTERVAL,), daemon=True).start()
    hook = f"http://localhost:{app.server_address[1]}/sectra/hook"

    server = MockSectraServer(token="dev-token")
    with server.run(port=0):
        callback_url, callback_token, slide_id = server.url, "dev-token", "slide-001"
        with SectraClient(url=callback_url, token=callback_token) as client:
            info = client.get_image_metadata(slide_id, extended=True, phi=True)
            paths = client.download_slide_files(slide_id, output_dir="./out/")
        client = SectraClient(url=callback_url, token=callback_token)   # also without the context manager
        client.get_image_metadata(slide_id, extended=True, phi=False); client.close()

        server.trigger(webhook_url=hook, application_id="my-app", slide_id="slide-001")
        results = server.get_results(app_id="my-app", slide_id="slide-001")
    app.shutdown()
    app.server_close()
    assert info.id == slide_id and info.accession_number
    assert paths and all(p.resolve().parent == (tmp_path / "out").resolve() for p in paths)
    assert received == ["slide-001"] and len(results) == 1


def test_fixed_port_run() -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    server = MockSectraServer(token="dev-token")
    with server.run(port=port):
        assert server.port == port
        with SectraClient(url=f"http://localhost:{port}", token="dev-token") as client:
            assert client.get_info().api_version == "1.10"


def test_local_dev_example_round_trip() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "local_dev.py")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "stored result 1" in done.stdout and "3 files, 3.0 MiB" in done.stdout
