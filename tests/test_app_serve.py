"""``sectra app serve MODULE:APP`` (issue #31), through the real entry point in a subprocess.

Each test writes a small app module into its own folder and serves it with
``python -m sectra_client app serve``; the mock Sectra server runs in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sectra_mock import MockSectraServer

ROOT = Path(__file__).resolve().parents[1]

APP_SOURCE = '''
from pathlib import Path

import trio

from sectra_client import schemas as s
from sectra_client.app import AnalysisApp

HERE = Path(__file__).resolve().parent
app = AnalysisApp(application_id="serve-test", display_name="Serve test", manufacturer="Tests")


@app.on_create
async def create(ctx):
    (HERE / "started").write_text(ctx.slide_id)
    # Held until the test releases it: an invocation in flight while SIGTERM arrives.
    while (HERE / "hold").exists() and not (HERE / "release").exists():
        await trio.sleep(0.02)
    return s.Result(slide_id=ctx.slide_id, display_result="served")

not_an_app = 42
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A running ``sectra app serve``: its process, the URL it printed, its stdout lines so far."""

    def __init__(self, proc: subprocess.Popen[str], url: str, lines: list[str]) -> None:
        self.proc, self.url, self.lines = proc, url, lines

    def stop(self, timeout: float = 60, *, signalled: bool = False) -> tuple[int, str, str]:
        if not signalled:
            self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, "\n".join(self.lines) + out, err


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECTRA_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@contextmanager
def serving(folder: Path, *args: str, env: dict[str, str] | None = None, scheme: str = "http") -> Iterator[Served]:
    """Start ``sectra app serve`` in ``folder``; yields once it printed where it serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sectra_client", "app", "serve", *args],
        cwd=folder, env=env or _env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while True:
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"sectra app serve exited ({proc.returncode}) before serving: {lines} {err}")
        lines.append(line.rstrip("\n"))
        if line.startswith("serving on "):
            break
        assert time.monotonic() < deadline, lines
    served = Served(proc, line.split("serving on ", 1)[1].strip(), lines)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)


def _get(url: str, *, context: ssl.SSLContext | None = None, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "serveapp.py").write_text(APP_SOURCE)
    return tmp_path


def test_serve_stores_a_result_and_finishes_it_on_sigterm(app_dir: Path) -> None:
    """A create from a running mock reaches the served app, which stores its result; SIGTERM while
    it is in flight: the answer still arrives, the process exits 0; every log line is JSON and
    none holds the mock's token."""
    mock = MockSectraServer(token="tok-" + "s3cret-never-logged")
    mock.add_synthetic_slide("slide-001", size_bytes=4096)
    (app_dir / "hold").write_text("")
    with mock.run():
        env = _env(SECTRA_TRUSTED_CALLBACKS=mock.url)
        with serving(app_dir, "serveapp:app", "--bind", "127.0.0.1:0", "--log-format", "json", env=env) as served:
            assert _get(f"{served.url}/healthz") == (200, b"ok\n")
            answers: list[Any] = []
            errors: list[BaseException] = []

            def trigger() -> None:
                try:
                    answers.append(mock.trigger(webhook_url=served.url, application_id="serve-test", slide_id="slide-001"))
                except BaseException as exc:  # reported below
                    errors.append(exc)

            thread = threading.Thread(target=trigger)
            thread.start()
            deadline = time.monotonic() + 60
            while not (app_dir / "started").exists():
                assert time.monotonic() < deadline and thread.is_alive(), errors
                time.sleep(0.02)
            served.proc.send_signal(signal.SIGTERM)
            assert served.proc.stderr is not None
            stderr_lines = []
            while True:  # the server has seen the signal before the handler may finish
                line = served.proc.stderr.readline()
                assert line, stderr_lines
                stderr_lines.append(line)
                if "finishing the requests in flight" in line:
                    break
            (app_dir / "release").write_text("")
            thread.join(60)
            code, _, err = served.stop(signalled=True)
        assert not errors and len(answers) == 1, errors
        assert code == 0, err
        [result] = mock.get_results(app_id="serve-test", slide_id="slide-001")
        assert result.display_result == "served" and result.id == answers[0].id
    entries = [json.loads(line) for line in "".join(stderr_lines + [err]).splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= entry.keys() for entry in entries)
    posts = [e for e in entries if e.get("method") == "POST" and e.get("path") == "/"]
    assert posts and posts[0]["status"] == 200, entries
    assert any(e.get("path") == "/healthz" and e.get("status") == 200 for e in entries)
    assert "s3cret" not in "".join(stderr_lines) + err


def test_settings_precedence_flags_over_env_over_dotenv(app_dir: Path) -> None:
    """.env sets the bind, the log format and the body limit; the environment overrides the log
    format; a flag overrides the body limit, and in a second run the bind. Proxy headers are
    trusted only when asked."""
    port_a, port_b = _free_port(), _free_port()
    (app_dir / ".env").write_text(
        f"SECTRA_BIND=127.0.0.1:{port_a}\nSECTRA_LOG_FORMAT=json\nSECTRA_MAX_INVOCATION_BYTES=1000\n"
        "SECTRA_PROXY_HOPS=1\n"
    )
    env = _env(SECTRA_LOG_FORMAT="text")
    with serving(app_dir, "serveapp:app", "--max-body-bytes", "3000", env=env) as served:
        assert served.url == f"http://127.0.0.1:{port_a}"
        # 2000 bytes: past .env's limit, within the flag's; not an invocation, so 400, not 413.
        assert _get(served.url + "/", data=b"x" * 2000, headers={"Content-Type": "application/json"})[0] == 400
        assert _get(served.url + "/", data=b"x" * 4000, headers={"Content-Type": "application/json"})[0] == 413
        _get(served.url + "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        code, _, err = served.stop()
    assert code == 0
    assert not err.lstrip().startswith("{") and "sectra_client.serve.access INFO GET /healthz" in err, err
    with serving(app_dir, "serveapp:app", "--bind", f"127.0.0.1:{port_b}", "--proxy-hops", "0",
                 env=_env(SECTRA_LOG_FORMAT="json")) as served:
        assert served.url == f"http://127.0.0.1:{port_b}"
        _get(served.url + "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        code, _, err = served.stop()
    assert code == 0
    [access] = [e for e in map(json.loads, err.splitlines()) if e.get("path") == "/healthz"]
    assert access["client"] == "127.0.0.1"  # --proxy-hops 0 beats .env's 1: the header is not trusted
    with serving(app_dir, "serveapp:app", "--bind", "127.0.0.1:0", env=_env(SECTRA_LOG_FORMAT="json", SECTRA_URL_PREFIX="/hook")) as served:
        _get(served.url + "/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
        status, body = _get(served.url + "/hook/info")
        assert status == 200 and b"apiVersion" in body
        assert _get(served.url + "/info")[0] == 404  # the app lives under SECTRA_URL_PREFIX only
        code, _, err = served.stop()
    [access] = [e for e in map(json.loads, err.splitlines()) if e.get("path") == "/healthz"]
    assert access["client"] == "203.0.113.7"  # .env's SECTRA_PROXY_HOPS=1


def test_tls_with_a_self_signed_certificate(app_dir: Path) -> None:
    """--certfile/--keyfile (here from SECTRA_TLS_CERT/SECTRA_TLS_KEY): HTTPS with the test CA's
    certificate; plain HTTP is not served."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(app_dir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(app_dir / "cert.pem"))
    for pem in cert.cert_chain_pems[1:]:
        with open(app_dir / "cert.pem", "ab") as chain:
            chain.write(pem.bytes())
    context = ssl.create_default_context()
    ca.configure_trust(context)
    env = _env(SECTRA_TLS_CERT=str(app_dir / "cert.pem"), SECTRA_TLS_KEY=str(app_dir / "key.pem"))
    with serving(app_dir, "serveapp:app", "--bind", "127.0.0.1:0", env=env) as served:
        assert served.url.startswith("https://127.0.0.1:")
        assert _get(f"{served.url}/healthz", context=context) == (200, b"ok\n")
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _get(served.url.replace("https://", "http://") + "/healthz")
        code, _, err = served.stop()
    assert code == 0, err


def test_several_worker_processes(app_dir: Path) -> None:
    """--workers 2: hypercorn's process manager with two trio workers; SIGTERM stops all, exit 0."""
    port = _free_port()
    with serving(app_dir, "serveapp:app", "--bind", f"127.0.0.1:{port}", "--workers", "2") as served:
        assert served.url == f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:  # the workers import the app after the manager printed its binds
            try:
                assert _get(f"{served.url}/healthz") == (200, b"ok\n")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        code, out, err = served.stop()
    assert code == 0, err
    assert "2 worker process(es)" in out


def test_queue_hint(app_dir: Path) -> None:
    """An app with a queue says how to start its workers, never the queue's URL (a password)."""
    queue = f"sqlite:///{app_dir / 'jobs.db'}"
    with serving(app_dir, "serveapp:app", "--bind", "127.0.0.1:0", env=_env(SECTRA_QUEUE=queue)) as served:
        code, out, err = served.stop()
    assert code == 0, err
    assert "sectra worker serveapp:app" in out and "SECTRA_QUEUE" in out
    assert str(app_dir / "jobs.db") not in out


@pytest.mark.parametrize(("args", "needle"), [
    (["nosuchmodule:app"], "cannot import 'nosuchmodule'"),
    (["serveapp:nope"], "has no 'nope'"),
    (["serveapp"], "write module:attribute"),
    (["serveapp:not_an_app"], "not an AnalysisApp"),
    (["serveapp:app", "--bind", "nowhere"], "HOST:PORT"),
    (["serveapp:app", "--certfile", "cert.pem"], "both --certfile and --keyfile"),
    (["serveapp:app", "--workers", "0"], "at least 1"),
    (["serveapp:app", "--env-file", "missing.env"], "does not exist"),
])
def test_mistakes_are_one_line_and_exit_2(app_dir: Path, args: list[str], needle: str) -> None:
    done = subprocess.run([sys.executable, "-m", "sectra_client", "app", "serve", *args], cwd=app_dir, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sectra: error:") and needle in lines[0], done.stderr


def test_a_second_sigterm_stops_at_once(app_dir: Path) -> None:
    """SIGTERM with an invocation held in flight, then SIGTERM again: the server stops without
    waiting for it (exit 1) and says so."""
    mock = MockSectraServer(token="t")
    (app_dir / "hold").write_text("")
    with mock.run():
        env = _env(SECTRA_TRUSTED_CALLBACKS=mock.url, SECTRA_LOG_FORMAT="json")
        with serving(app_dir, "serveapp:app", "--bind", "127.0.0.1:0", env=env) as served:
            failures: list[BaseException] = []

            def trigger() -> None:
                try:
                    mock.trigger(webhook_url=served.url, application_id="serve-test", slide_id="slide-001")
                except BaseException as exc:  # the connection is cut: expected
                    failures.append(exc)

            thread = threading.Thread(target=trigger, daemon=True)
            thread.start()
            deadline = time.monotonic() + 60
            while not (app_dir / "started").exists():
                assert time.monotonic() < deadline and thread.is_alive()
                time.sleep(0.02)
            assert served.proc.stderr is not None
            served.proc.send_signal(signal.SIGTERM)
            while "finishing the requests in flight" not in served.proc.stderr.readline():
                assert served.proc.poll() is None
            served.proc.send_signal(signal.SIGTERM)
            code, _, err = served.stop(signalled=True, timeout=30)
            thread.join(60)
    assert code == 1, err
    messages = [json.loads(line)["message"] for line in err.splitlines() if line.strip()]
    assert any(m.startswith("second SIGTERM: stopping now") for m in messages), messages
    assert failures and not mock.get_results(app_id="serve-test", slide_id="slide-001")
