"""A real Orthanc with its DICOMweb plugin, per test, on a free loopback port with a throw-away
storage folder; and the demo DICOM slide's files.

Without Orthanc (Debian ``orthanc`` and ``orthanc-dicomweb``) the tests skip loudly, and fail
under ``CI=true`` (``.ci/run`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Where Debian's orthanc-dicomweb puts the plugin (and where other builds often do).
PLUGIN_FOLDERS = ("/usr/share/orthanc/plugins", "/usr/lib/orthanc/plugins", "/usr/local/share/orthanc/plugins")


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, yet {reason}; .ci/run installs it")
    pytest.skip(f"SKIPPED THE ORTHANC DICOMWEB TESTS: {reason}")


def _plugin() -> Path | None:
    for folder in PLUGIN_FOLDERS:
        found = sorted(Path(folder).glob("libOrthancDicomWeb.so*")) if Path(folder).is_dir() else []
        if found:
            return found[0]
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[str]:
    """A fresh Orthanc for one test; its DICOMweb root (``http://127.0.0.1:PORT/dicom-web``)."""
    binary = shutil.which("Orthanc") or (Path("/usr/sbin/Orthanc") if Path("/usr/sbin/Orthanc").exists() else None)
    if binary is None:
        _missing("Orthanc is not installed: the DICOMweb tests need it (apt-get install orthanc orthanc-dicomweb)")
    plugin = _plugin()
    if plugin is None:
        _missing("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    storage = tmp_path / "orthanc-storage"
    storage.mkdir()
    for _ in range(5):  # a free port, retried if someone takes it first
        port = _free_port()
        config = {
            "Name": "sectra-sdk-tests", "StorageDirectory": str(storage), "IndexDirectory": str(storage),
            "HttpPort": port, "DicomServerEnabled": False, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "HttpCompressionEnabled": False,
            "Plugins": [str(plugin)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        config_file = tmp_path / "orthanc.json"
        config_file.write_text(json.dumps(config), encoding="utf-8")
        log = (tmp_path / "orthanc.log").open("wb")
        proc = subprocess.Popen([str(binary), str(config_file)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        root = f"http://127.0.0.1:{port}/dicom-web"
        deadline = time.monotonic() + 60  # a loaded 2-core machine
        while proc.poll() is None and time.monotonic() < deadline and not _answers(root + "/studies"):
            time.sleep(0.1)
        if proc.poll() is None and _answers(root + "/studies"):
            break
        proc.kill()
        proc.wait()
        log.close()
    else:
        pytest.fail("Orthanc did not start on a free port; its log: " + (tmp_path / "orthanc.log").read_text(errors="replace")[-2000:])
    try:
        yield root
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def demo_dicom_files() -> list[Path]:
    """The demo DICOM slide (slide-003)'s files: one instance per level plus its label."""
    pytest.importorskip("pydicom")
    from sectra_mock.demo_slides import DEMO_SLIDES, ensure_demo_slides

    demo = [d for d in DEMO_SLIDES if d.slide_id == "slide-003"]
    return ensure_demo_slides(slides=demo)["slide-003"]


class PlayServer:
    """A loopback HTTP server that reads each request whole (a STOW body included) and plays a
    canned answer per method and path; for answers no real archive gives on demand (a partial
    STOW success, an HTML page, broken DICOM JSON)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        #: (method, path) -> list of (status, headers, body) played in turn (the last one repeats).
        self.answers: dict[tuple[str, str], list[tuple[int, dict[str, str], bytes]]] = {}
        #: (method, path with query, lower-case headers, body) of every request.
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((self.command, self.path, headers, body))
                played = server.answers.get((self.command, self.path.split("?")[0]))
                status, out_headers, out = (404, {}, b"") if not played else (played.pop(0) if len(played) > 1 else played[0])
                self.send_response(status)
                for key, value in {**out_headers, "Content-Length": str(len(out))}.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that cut its upload short (a test of exactly that) is no error here

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dicom-web"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self._thread.start()

    def play(self, method: str, path: str, *answers: tuple[int, dict[str, str], bytes]) -> None:
        """Answer ``method path`` (below ``/dicom-web``) with these, in turn."""
        self.answers[(method, "/dicom-web" + path)] = list(answers)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def play_server() -> Iterator[PlayServer]:
    """A running :class:`PlayServer`."""
    server = PlayServer()
    try:
        yield server
    finally:
        server.close()
