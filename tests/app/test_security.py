"""Issue #12, the app toolkit's holes, attacked the way an attacker would: hostile invocations
POSTed to a real app on loopback, callback URLs pointing at listening sockets, 401 servers fishing
for credentials, huge and trickled bodies, duplicate deliveries.

Each test here failed before the fix; the figures are in the commit messages.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
import pytest
import trio

from sectra_client.app import AnalysisApp, AsyncJob, PrimitiveBuilder, SyncJob, TrioJobRunner
from sectra_core import schemas as s
from sectra_core.app import messages as w
from sectra_core.errors import UntrustedOriginError
from sectra_core.http import HttpRequest
from sectra_core.flows import Credentials
from sectra_mock import MockSectraServer
from sectra_transports.trio import TrioTransport
from tests.conftest import POLL_INTERVAL, RawServer

Serve = Callable[..., Awaitable[str]]
APP_ID = "guarded"
PHI = "Jane Doe 19121212-1212"


def make_app(**options: Any) -> AnalysisApp:
    return AnalysisApp(application_id=APP_ID, display_name="Guarded", manufacturer="Acme", **options)


def box(slide_id: str, text: str = "done") -> s.Result:
    return PrimitiveBuilder().rectangle(0.1, 0.1, 0.2, 0.2).label((0.1, 0.1), text).build(slide_id, text)


async def post(url: str, body: bytes) -> tuple[int, bytes]:
    """POST raw bytes to the app, as anyone on the network can."""
    async with TrioTransport() as transport:
        response = await transport.handle_async_request(HttpRequest("POST", url, {"Content-Type": "application/json"}, body))
        # A small answer comes read (body); a large or unsized one as a stream (sectra_core.transport).
        data = response.body if response.stream is None else b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
    return response.status, data


def create_body(callback_url: str, token: str = "tok", slide_id: str = "slide-1") -> bytes:
    invocation = s.CreateInvocation(
        application_id=APP_ID, slide_id=slide_id, callback_info=s.CallbackInfo(url=callback_url, token=token),
        cancellation_token="c-1", input=s.WholeSlideInput(),
    )
    return s.encode(invocation)


class AcceptCounter:
    """A listening loopback socket that counts the connections it is offered (and drops them)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    async def accepted_before_a_marker(self) -> int:
        """Connect once ourselves and wait until that connection is counted: connections offered
        before it are counted by then too (accepted in order), so the count before ours is final
        for everything that happened before this call, with no sleep that a slow machine outlasts."""
        before = self.accepted
        with socket.create_connection(("127.0.0.1", self.port), timeout=5):
            with trio.fail_after(10):
                while self.accepted == before:
                    await trio.sleep(0.01)
        return self.accepted - 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@contextmanager
def accept_counter() -> Iterator[AcceptCounter]:
    counter = AcceptCounter()
    try:
        yield counter
    finally:
        counter.close()


# --- hole 3: SSRF ---------------------------------------------------------------------------------


def hostile_urls(port: int, trusted_port: int) -> list[str]:
    """Callback URLs aimed at the listening socket, including the classic allow-list bypasses."""
    return [
        f"http://127.0.0.1:{port}/SectraPathologyServer/external/imageanalysis/v1",
        f"http://localhost:{port}",
        f"http://127.0.0.1:{trusted_port}@127.0.0.1:{port}/",  # user-info: the host is the second one
        f"http://127.0.0.1:{trusted_port}\\@127.0.0.1:{port}/",  # parsers disagree on the backslash
        f"HTTP://127.0.0.1.:{port}/",
        f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://127.1:{port}/",
    ]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_untrusted_callback_is_refused_before_any_connection(
    kind: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    """Before: the app connected to whatever callbackInfo.url said (the socket saw 1 connection per
    POST) and answered 502 quoting the reply. After: 403, and the socket sees nothing."""
    app = make_app()
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            await ctx.image_info()
            return box(ctx.slide_id)
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            ctx.image_info()
            return box(ctx.slide_id)

    url = await serve_sectra_app(app)  # trusts this test's mock, nothing else
    with accept_counter() as target:
        for callback in hostile_urls(target.port, sectra_mock.port):
            status, body = await post(url, create_body(callback))
            assert status == 403, (callback, body)
            assert str(target.port) not in body.decode()
        assert await target.accepted_before_a_marker() == 0
    # the trusted mock still works
    assert (await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")).display_result == "done"


async def test_no_allow_list_refuses_everything_and_says_how_to_configure(
    serve_sectra_app: Serve, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SECTRA_TRUSTED_CALLBACKS", raising=False)
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return box(ctx.slide_id)

    with caplog.at_level(logging.INFO, logger="sectra_transports.app.server"), accept_counter() as target:
        url = await serve_sectra_app(app)  # no mock started in this test: nothing is trusted
        assert "trusts no callback origin" in caplog.text and "SECTRA_TRUSTED_CALLBACKS" in caplog.text
        for callback in (target.url, "https://pacs.example.org"):
            status, body = await post(url, create_body(callback))
            assert status == 403 and msgspec.json.decode(body) == {"error": w.UNTRUSTED}
        assert target.accepted == 0


async def test_trusted_callbacks_from_the_environment(
    sectra_mock: MockSectraServer, serve_sectra_app: Serve, monkeypatch: pytest.MonkeyPatch, nursery: trio.Nursery,
) -> None:
    from sectra_client.app import AppServer, create_app

    monkeypatch.setenv("SECTRA_TRUSTED_CALLBACKS", f" https://pacs.example.org , {sectra_mock.url.upper()}/ignored/path")
    app = make_app()
    assert app.trusted_callbacks.origins == {"https://pacs.example.org:443", f"http://127.0.0.1:{sectra_mock.port}"}

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return box(ctx.slide_id)

    server = AppServer(create_app(app))  # no fixture help: the environment alone
    base = await nursery.start(server.serve)
    try:
        assert (await sectra_mock.aio.trigger(base, application_id=APP_ID, slide_id="s")).display_result == "done"
    finally:
        await server.aclose()


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_upstream_failures_all_look_alike(kind: str, serve_sectra_app: Serve) -> None:
    """Port scanning through the app: before, "refused", "404 + body" and "bad JSON" gave three
    different 502 texts, each quoting the target (up to 200 bytes of its reply). After: one text."""
    app = make_app()
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            await ctx.image_info()
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            ctx.image_info()

    raw = RawServer()
    raw.route("/slides/slide-1/info", 404, {"Content-Type": "text/plain"}, f"no such slide; patient {PHI}".encode())
    raw.route("/slides/slide-2/info", 200, {"Content-Type": "application/json"}, b'{"admin-secret": "hunter2"')
    thread = threading.Thread(target=raw.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    with accept_counter() as closed:
        closed.close()  # a port that refuses connections
        try:
            url = await serve_sectra_app(app, trusted_callbacks=[raw.url, closed.url])
            answers = {
                await post(url, create_body(raw.url, slide_id="slide-1")),
                await post(url, create_body(raw.url, slide_id="slide-2")),
                await post(url, create_body(closed.url)),
            }
        finally:
            raw.httpd.shutdown()
            raw.httpd.server_close()
    assert answers == {(502, s.encode({"error": w.UPSTREAM_FAILED}))}


# --- hole 4: credentials --------------------------------------------------------------------------


def test_credentials_without_trusted_callbacks_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECTRA_TRUSTED_CALLBACKS", raising=False)
    with pytest.raises(UntrustedOriginError, match="credentials.*trusted_callbacks"):
        make_app(client_options={"credentials": Credentials("svc", "pw-5ecret", APP_ID)})
    monkeypatch.setenv("SECTRA_TRUSTED_CALLBACKS", "https://pacs.example.org")
    assert make_app(client_options={"credentials": Credentials("svc", "pw-5ecret", APP_ID)}).trusted_callbacks


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_credentials_never_reach_an_untrusted_401_server(
    kind: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    """Before: a callback server answering 401 got ``Authorization: Basic`` (the app's password)
    on ``POST /token``. After: 403, and the 401 server is never contacted."""
    app = make_app(trusted_callbacks=[sectra_mock.url], client_options={"credentials": Credentials("svc", "pw-5ecret", APP_ID)})
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            await ctx.image_info()
            return box(ctx.slide_id)
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            ctx.image_info()
            return box(ctx.slide_id)

    raw = RawServer()
    for path in ("/slides/slide-1/info", "/token"):  # (/info answers 200, as Sectra does)
        raw.route(path, 401, {"Content-Type": "application/json", "WWW-Authenticate": "Basic"}, b'{"error": "login"}')
    thread = threading.Thread(target=raw.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        url = await serve_sectra_app(app)
        status, _ = await post(url, create_body(raw.url))
    finally:
        raw.httpd.shutdown()
        raw.httpd.server_close()
    assert status == 403
    assert not any(h.get("authorization", "").startswith("Basic") for _, h in raw.requests)
    assert raw.requests == []


# --- hole 6: what the app says and logs ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_upstream_bodies_and_tokens_stay_out_of_answers_and_logs(
    kind: str, serve_sectra_app: Serve, caplog: pytest.LogCaptureFixture,
) -> None:
    """Before: the 502 answer and the ERROR log line both quoted the callback server's error body
    (PHI included). After: neither does; the log names the kind and status only."""
    token = "callback-token-5ecret"
    app = make_app()
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            await ctx.image_info()
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            ctx.image_info()

    raw = RawServer()
    raw.route("/slides/slide-1/info", 500, {"Content-Type": "text/plain"}, f"stack trace for patient {PHI}".encode())
    thread = threading.Thread(target=raw.httpd.serve_forever, args=(POLL_INTERVAL,), daemon=True)
    thread.start()
    try:
        url = await serve_sectra_app(app, trusted_callbacks=[raw.url], debug=False)  # production logging
        with caplog.at_level(logging.DEBUG):
            status, body = await post(url, create_body(raw.url, token=token))
    finally:
        raw.httpd.shutdown()
        raw.httpd.server_close()
    assert status == 502
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in ("Jane", "19121212", token):
        assert secret not in body.decode() and secret not in logged, secret
    assert "HTTP 500 answering GET" in caplog.text  # the operator still learns what failed


# --- hole 8: duplicate deliveries ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_100_copies_of_one_create_store_one_result(
    kind: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    """Before: 100 concurrent copies of one create stored 100 results. After: 1, and every copy
    is answered with it."""
    app = make_app()
    calls = 0
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            await trio.sleep(0.05)  # long enough for every copy to arrive while the first runs
            return box(ctx.slide_id)
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            ctx.image_info()
            return box(ctx.slide_id)

    url = await serve_sectra_app(app)
    invocation = sectra_mock.build_create(APP_ID, "slide-1")
    answers: list[s.ResultResponse] = []

    async def one() -> None:
        answers.append(await sectra_mock.aio.trigger(url, invocation=invocation))

    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(one)
    stored = sectra_mock.get_results(APP_ID, "slide-1")
    assert len(stored) == 1 and calls == 1
    assert {a.id for a in answers} == {stored[0].id} and len(answers) == 100
    # a later copy within the window gets the same answer; a new invocation runs again
    assert (await sectra_mock.aio.trigger(url, invocation=invocation)).id == stored[0].id
    await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert len(sectra_mock.get_results(APP_ID, "slide-1")) == 2


async def test_a_replay_with_another_token_is_not_served_from_memory(
    sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        await ctx.image_info()
        return box(ctx.slide_id)

    url = await serve_sectra_app(app)
    invocation = sectra_mock.build_create(APP_ID, "slide-1")
    await sectra_mock.aio.trigger(url, invocation=invocation)
    forged = msgspec.structs.replace(invocation, callback_info=s.CallbackInfo(url=sectra_mock.url, token="guess"))
    status, body = await post(url, s.encode(forged))
    assert status == 502 and b'"id"' not in body  # ran again (and the mock refused the token)


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_reuse_under_20_concurrent_invocations_converges_on_one_result(
    kind: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve,
) -> None:
    """Before: ``start_job(reuse=True)`` from concurrent invocations answered some of them 502
    (409 conflicts) and still stored several results. After: one result, every answer 200."""
    runner = TrioJobRunner()
    app = make_app(job_runner=runner)
    if kind == "async":
        async def awork(job: AsyncJob) -> s.Result:
            return box(job.slide_id, "final")

        @app.on_notification
        async def notified(ctx):  # type: ignore[no-untyped-def]
            await ctx.start_job(awork, reuse=True)

        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            return await ctx.start_job(awork, reuse=True)
    else:
        def swork(job: SyncJob) -> s.Result:
            return box(job.slide_id, "final")

        @app.on_notification
        def notified(ctx):  # type: ignore[no-untyped-def]
            ctx.start_job(swork, reuse=True)

        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            return ctx.start_job(swork, reuse=True)

    url = await serve_sectra_app(app)
    answers: list[Any] = []

    async def one(k: int) -> None:
        # 20 distinct deliveries (own cancellation tokens): deduplication does not apply
        if k % 2:
            answers.append(await sectra_mock.aio.notify(url, "slide-1", APP_ID))
        else:
            answers.append(await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1"))

    async with trio.open_nursery() as nursery:
        for k in range(20):
            nursery.start_soon(one, k)
    await runner.join()
    stored = sectra_mock.get_results(APP_ID, "slide-1")
    assert len(stored) == 1 and len(answers) == 20
    assert {a.id for a in answers if isinstance(a, s.ResultResponse)} == {stored[0].id}
