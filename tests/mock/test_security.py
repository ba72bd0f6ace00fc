"""Attacks on the mock (issue 12, holes 1, 5 and 11), each against the real mock on loopback.

The mock is a development tool, not a security boundary; these tests pin down what it promises
anyway: it never hands out its operator token, a token only reaches its own application, and a
hostile request body cannot make it grow without bound.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3

from sectra_core import schemas as s
from sectra_mock import MockSectraServer
from tests.conftest import TOKEN
from tests.load.test_load import _rss_kib, mock_process
from tests.mock.conftest import App
from tests.mock.test_server import get, send

http = urllib3.PoolManager()
RESULT = {"slideId": "s", "displayResult": "x"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post(server: MockSectraServer, path: str, body: object, token: str) -> urllib3.BaseHTTPResponse:
    return http.request("POST", server.url + path, body=json.dumps(body).encode(),
                        headers={**bearer(token), "Content-Type": "application/json"})


# --- hole 1: the mock handed out its bearer token --------------------------------------------------


def test_launch_data_is_not_handed_out_for_a_guessed_session(mock: MockSectraServer) -> None:
    """The attack of issue 12: no auth, the old fixed session token, a request nobody launched."""
    r = get(mock, "/launchdata?requestId=x&sessionToken=dev-session&appId=any", headers={})
    assert r.status == 401, r.data  # before the fix: 200 with callbackInfo.token == the operator token
    assert TOKEN.encode() not in r.data
    assert mock.session_token != "dev-session" and len(mock.session_token) >= 32
    assert MockSectraServer().session_token != MockSectraServer().session_token  # random per instance
    assert MockSectraServer(session_token="chosen").session_token == "chosen"


def test_launch_data_only_for_requests_the_mock_launched(mock: MockSectraServer) -> None:
    acc = mock.image_info("s1").accession_number
    session = mock.session_token
    # The right session, but nothing was launched for this request: as a real server, 404.
    r = get(mock, f"/launchdata?requestId={acc}&sessionToken={session}&appId=a", headers={})
    assert r.status == 404 and json.loads(r.data)["error"]
    launch_url = mock.launch(acc, application_id="a")
    assert urlsplit(launch_url).path == "/launchdata"
    assert parse_qs(urlsplit(launch_url).query) == {"requestId": [acc], "sessionToken": [session]}
    r = get(mock, f"{launch_url.removeprefix(mock.url)}&appId=a", headers={})
    assert r.status == 200
    data = json.loads(r.data)
    assert data["blocks"][0]["slides"][0]["id"] == "s1"
    token = data["callbackInfo"]["token"]
    assert token != TOKEN and token == mock.app_token("a")  # bound to the app, never the operator's
    assert get(mock, "/slides/s1/info", bearer(token)).status == 200
    # A launch for app "a" gives nothing to another app, and a wrong session gives nothing at all.
    assert get(mock, f"{launch_url.removeprefix(mock.url)}&appId=b", headers={}).status == 403
    r = get(mock, f"/launchdata?requestId={acc}&sessionToken={session}x&appId=a", headers={})
    assert r.status == 401 and token.encode() not in r.data


# --- hole 11: tokens were not tied to an application -----------------------------------------------


def test_invocation_token_of_app_a_cannot_touch_app_b(mock: MockSectraServer, app_factory: Callable[[int, bytes], App]) -> None:
    app = app_factory(200, s.encode(s.ResultResponse(id=1, version_id="v", slide_id="s")))
    mock.trigger(webhook_url=app.url, application_id="app-a", slide_id="s")
    token = app.received[0]["callbackInfo"]["token"]
    assert token != TOKEN
    stored = post(mock, "/applications/app-a/results", RESULT, token)
    assert stored.status == 201
    # Before the fix each of these answered 201/200: any token wrote and read any app's results.
    for method, path in [("POST", "/applications/app-b/results"), ("GET", "/applications/app-b/results/1"),
                         ("PUT", "/applications/app-b/results/1"), ("GET", "/applications/app-b/results/slide/s"),
                         ("GET", "/applications/app-b"), ("GET", "/applications/app-b/results/1/attachments?name=x")]:
        r = http.request(method, mock.url + path, body=json.dumps(RESULT).encode() if method != "GET" else None,
                         headers={**bearer(token), "Content-Type": "application/json"})
        assert r.status == 403, (method, path, r.status)
        assert "app-a" in json.loads(r.data)["error"]  # says which application the token is for
    assert mock.get_results("app-b", "s") == []
    # The app's own routes and the slide routes work; the operator token still reaches every app.
    assert get(mock, "/applications/app-a/results/slide/s", bearer(token)).status == 200
    assert get(mock, "/slides/s/info", bearer(token)).status == 200
    assert post(mock, "/applications/app-b/results", RESULT, TOKEN).status == 201


def test_login_token_is_bound_to_its_application(make_mock: Callable[..., MockSectraServer]) -> None:
    import base64

    server = make_mock(users={"user": "pass"})
    r = http.request("POST", server.url + "/token?applicationId=app-a", body=b"grant_type=client_credentials",
                     headers={"Authorization": "Basic " + base64.b64encode(b"user:pass").decode(),
                              "Content-Type": "application/x-www-form-urlencoded"})
    token = json.loads(r.data)["access_token"]
    assert post(server, "/applications/app-a/results", RESULT, token).status == 201
    assert post(server, "/applications/app-b/results", RESULT, token).status == 403


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(mock: MockSectraServer, scheme: str) -> None:
    # RFC 7235 §2.1: the auth-scheme is a case-insensitive token. Before the fix: 401 for all but "Bearer".
    assert get(mock, "/info", {"Authorization": f"{scheme} {TOKEN}"}).status == 200
    assert get(mock, "/info", {"Authorization": f"{scheme} wrong"}).status == 401
    assert get(mock, "/info", {"Authorization": f"Basic {TOKEN}"}).status == 401


# --- hole 5 (the mock's share): result bodies were kept in memory uncapped -------------------------


def _raw_post(url: str, head: dict[str, str], timeout: float) -> socket.socket:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    sock = socket.create_connection((host, port), timeout=timeout)
    lines = ["POST /applications/a/results HTTP/1.1", f"Host: {host}:{port}", f"Authorization: Bearer {TOKEN}",
             "Content-Type: application/json", *(f"{k}: {v}" for k, v in head.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def _read_answer(sock: socket.socket, keep: int = 2**16) -> tuple[int, bytes]:
    """The status and the first ``keep`` bytes of the body (an unfixed mock echoes a whole
    320 MiB result back)."""
    data = bytearray()
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    got = bytearray(body)
    while len(got) < min(length, keep):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return int(head.split(b" ")[1]), bytes(got[:keep])


def test_oversized_result_is_refused_before_its_body_is_read(make_mock: Callable[..., MockSectraServer]) -> None:
    """A declared length past the cap is a 413 at once: the mock does not wait for the body."""
    server = make_mock()
    sock = _raw_post(server.url, {"Content-Length": str(100 * 2**20)}, timeout=5)  # 100 MiB > 64 MiB
    with sock:
        sock.sendall(b'{"slideId": "s", "displayResult": "')  # a few bytes of the promised 100 MiB
        status, body = _read_answer(sock)  # before the fix: socket.timeout (the mock waited for 100 MiB)
    assert status == 413
    error = json.loads(body)["error"]
    assert "67108864" in error and "max_request_bytes" in error and "--max-request-bytes" in error
    # The cap is configurable.
    small = make_mock(max_request_bytes=1000)
    assert post(small, "/applications/a/results", {**RESULT, "displayResult": "y" * 2000}, TOKEN).status == 413
    assert post(small, "/applications/a/results", RESULT, TOKEN).status == 201


CHUNKED_MIB = 320


def test_mock_memory_stays_bounded_under_a_huge_chunked_result() -> None:
    """320 MiB of valid result JSON, chunked (no length to refuse early): the mock stops reading at
    its 64 MiB cap. Peak RSS of the mock's own process, from /proc (never this process)."""
    piece = b"x" * 2**20
    with mock_process("""
import sys
sys.path.insert(0, sys.argv[1])
from sectra_mock import MockSectraServer
m = MockSectraServer(token=%r)
with m.run():
    print(m.url, flush=True)
    sys.stdin.read()
""" % TOKEN) as (url, pid):
        before = _rss_kib(pid, "VmRSS")
        sock = _raw_post(url, {"Transfer-Encoding": "chunked"}, timeout=60)
        with sock:
            try:
                first = b'{"slideId": "slide-001", "displayResult": "'
                sock.sendall(b"%x\r\n%s\r\n" % (len(first), first))
                for _ in range(CHUNKED_MIB):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b'2\r\n"}\r\n0\r\n\r\n')
            except (BrokenPipeError, ConnectionResetError):
                pass  # the mock answered and closed: it will not read the rest
            status, body = _read_answer(sock)
        peak = _rss_kib(pid, "VmHWM")
        stored = json.loads(get_url(url, "/applications/a/results/slide/slide-001"))
    growth_mib = (peak - before) / 1024
    print(f"mock RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB after a {CHUNKED_MIB} MiB result POST")
    assert status == 413, (status, body[:200])  # before the fix: 201, the 320 MiB result stored
    assert stored == []
    assert growth_mib < 160, f"the mock grew by {growth_mib:.0f} MiB for one refused result"


def get_url(base: str, path: str) -> bytes:
    return http.request("GET", base + path, headers=bearer(TOKEN)).data


def test_results_per_slide_are_capped(mock: MockSectraServer) -> None:
    """An app (or an attacker with a token) storing results in a loop hits a clear 507."""
    cap = 10_000  # the default
    for _ in range(cap):  # filled in-process: 10,000 HTTP round trips would only slow the test
        mock.state.create_result("a", s.Result(slide_id="s"))
    r = post(mock, "/applications/a/results", RESULT, TOKEN)
    assert r.status == 507, r.status  # before the fix: 201, and on without end
    error = json.loads(r.data)["error"]
    assert "10000" in error and "max_results_per_slide" in error
    assert post(mock, "/applications/a/results", {**RESULT, "slideId": "other"}, TOKEN).status == 201
    assert post(mock, "/applications/b/results", RESULT, TOKEN).status == 201
    assert send(mock, "PUT", "/applications/a/results/1", RESULT).status == 200  # updating stays possible
    assert mock.max_results_per_slide == cap


def test_stored_result_bytes_are_capped(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(max_stored_result_bytes=1_000_000)
    big = {**RESULT, "displayResult": "z" * 400_000}
    assert post(server, "/applications/a/results", big, TOKEN).status == 201
    assert post(server, "/applications/b/results", {**big, "slideId": "t"}, TOKEN).status == 201
    r = post(server, "/applications/c/results", {**big, "slideId": "u"}, TOKEN)
    assert r.status == 507 and "max_stored_result_bytes" in json.loads(r.data)["error"]
    # Replacing a result with a smaller one frees room; a larger one past the cap is refused.
    assert send(server, "PUT", "/applications/a/results/1", RESULT).status == 200
    assert post(server, "/applications/c/results", {**big, "slideId": "u"}, TOKEN).status == 201
    assert send(server, "PUT", "/applications/a/results/1", {**big, "displayResult": "z" * 600_000}).status == 507
    assert server.get_results("a", "s")[0].display_result == "x"  # the refused update changed nothing


# --- the CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def serve_cli() -> Iterator[Callable[..., str]]:
    from sectra_client.cli import main

    threads: list[tuple[threading.Thread, threading.Event]] = []

    def serve(*argv: str) -> str:
        out, stop = io.StringIO(), threading.Event()
        thread = threading.Thread(target=main, args=(["mock", "serve", "--port", "0", *argv],),
                                  kwargs={"out": out, "stop_event": stop}, daemon=True)
        thread.start()
        threads.append((thread, stop))
        deadline = time.monotonic() + 10
        while "Ctrl-C stops" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        return out.getvalue()

    yield serve
    for thread, stop in threads:
        stop.set()
        thread.join(15)
        assert not thread.is_alive()


def test_cli_prints_a_random_session_and_launch_urls(serve_cli: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    out = serve_cli("--token", "t", "--launch", "ACC-1")
    session = next(line.split()[-1] for line in out.splitlines() if line.startswith("session token:"))
    assert session != "dev-session" and len(session) >= 32
    launch = next(line.split()[-1] for line in out.splitlines() if "/launchdata?" in line)
    assert parse_qs(urlsplit(launch).query) == {"requestId": ["ACC-1"], "sessionToken": [session]}
    assert "not a security boundary" not in capsys.readouterr().err  # loopback: no warning
    out = serve_cli("--token", "t", "--session-token", "my-session")
    assert "session token: my-session" in out


def test_cli_warns_when_the_mock_listens_beyond_loopback(serve_cli: Callable[..., str], capsys: pytest.CaptureFixture[str]) -> None:
    out = serve_cli("--host", "0.0.0.0", "--token", "operator-s3cret")
    err = capsys.readouterr().err
    assert "mock Sectra server" in out
    assert "0.0.0.0" in err and "not a security boundary" in err and "operator-s3cret" not in err


@pytest.mark.parametrize("host, warned", [
    ("127.0.0.1", False), ("127.0.0.2", False), ("localhost", False), ("::1", False), ("[::1]", False),
    ("0.0.0.0", True), ("::", True), ("192.168.1.20", True), ("myhost.example.org", True),
])
def test_which_hosts_are_warned_about(host: str, warned: bool) -> None:
    from sectra_client.cli._embedded_mock import warn_if_exposed as _warn_if_exposed

    err = io.StringIO()
    _warn_if_exposed(host, err)
    assert ("not a security boundary" in err.getvalue()) is warned
