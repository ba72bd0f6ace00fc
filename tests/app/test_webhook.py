"""The app toolkit served for real (quart-trio on hypercorn) and driven by the mock playing Sectra."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from sectra_client.app import AnalysisApp, PatchGalleryBuilder, PrimitiveBuilder
from sectra_core import schemas as s
from sectra_core.errors import ConfigurationError, ConnectError, HTTPStatusError, ServerError
from sectra_mock import MockSectraServer

Serve = Callable[..., Awaitable[str]]
APP_ID = "tissue"


def make_app(**options: object) -> AnalysisApp:
    return AnalysisApp(application_id=APP_ID, display_name="Tissue", manufacturer="Acme", app_version="2.0.0", **options)  # type: ignore[arg-type]


def box(ctx_slide: str, max_y: float, text: str = "done") -> s.Result:
    return PrimitiveBuilder().rectangle(0.1, 0.1, 0.5, max_y / 2).label((0.1, 0.1), text).build(ctx_slide, text)


async def test_registration_info_and_check(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app(input_type="taggedPolygon", tags=["Tumor", "Stroma"], context={"gallery": False})
    seen: list[s.CreateInvocation] = []

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        seen.append(ctx.invocation)
        info = await ctx.image_info()
        return box(ctx.slide_id, info.max_y, ctx.invocation.input.content.tag)

    url = await serve_sectra_app(app)
    report = await sectra_mock.aio.check_app(url, slide_id="slide-1")
    assert report.ok, report.problems
    assert report.registration is not None and report.registration.url == url
    assert report.registration.input_template.content.tags == ["Tumor", "Stroma"]  # type: ignore[union-attr]
    assert report.info is not None and report.info.software_version == "2.0.0"
    # the check fired a tagged-polygon create shaped by the template and the app stored its answer
    assert isinstance(seen[0].input, s.TaggedPolygonInput) and seen[0].context == {"gallery": False}
    stored = sectra_mock.get_results(APP_ID, "slide-1")
    assert [r.id for r in stored] == [report.answer.id]  # type: ignore[union-attr]
    assert stored[0].display_result == "Tumor" and stored[0].application_version == "2.0.0"


async def test_check_app_reports_problems(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = AnalysisApp(s.Registration(application_id=" x", display_name="", manufacturer="m", url="",
                                     input_template=s.InputTemplate(type="taggedPolygon")))
    url = await serve_sectra_app(app)
    report = await sectra_mock.aio.check_app(url, slide_id="slide-1")
    assert not report.ok
    text = "\n".join(report.problems)
    assert "display_name is empty" in text and "spaces" in text and "content.tags" in text
    assert "no create handler" in text
    unreachable = await sectra_mock.aio.check_app("http://127.0.0.1:9/nothing")
    assert not unreachable.ok and "ConnectError" in unreachable.problems[0]


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_create_stores_the_returned_result(kind: str, sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()
    if kind == "async":
        @app.on_create
        async def create(ctx):  # type: ignore[no-untyped-def]
            return box(ctx.slide_id, (await ctx.image_info()).max_y)
    else:
        @app.on_create
        def create(ctx):  # type: ignore[no-untyped-def]
            assert not isinstance(ctx.client, type(None))
            return box(ctx.slide_id, ctx.image_info().max_y)

    url = await serve_sectra_app(app)
    answer = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert isinstance(answer, s.ResultResponse)
    assert [r.id for r in sectra_mock.get_results(APP_ID, "slide-1")] == [answer.id]


async def test_modify_delete_cancel_defaults(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        gallery = PatchGalleryBuilder(["A", "B"]).region([(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)])
        gallery.patch("B", (0.15, 0.15), 0.9).action("recount", "Recount")
        return gallery.build(ctx.slide_id, "1 patch")

    url = await serve_sectra_app(app)
    stored = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    # no modify handler: a pressed button is released and the result echoed (Sectra's basic app)
    echoed = await sectra_mock.aio.modify(url, stored, application_id=APP_ID, press="recount")
    assert echoed.id == stored.id and echoed.data.result.content.actions[0].state == 0  # type: ignore[union-attr]
    assert await sectra_mock.aio.delete(url, stored, application_id=APP_ID) == {}
    assert await sectra_mock.aio.cancel(url, application_id=APP_ID, slide_id="slide-1", cancellation_token="t") == []
    assert await sectra_mock.aio.notify(url, "slide-1", APP_ID) == {}


async def test_modify_handler_replaces_the_result(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()
    pressed: list[int] = []

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return PatchGalleryBuilder(["A", "B"]).region([(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)]).action("go", "Go").build(ctx.slide_id, "v1")

    @app.on_modify
    def modify(ctx):  # type: ignore[no-untyped-def]
        current = ctx.invocation.input
        pressed.append(current.data.result.content.actions[0].state)
        return PatchGalleryBuilder(["A", "B"]).region([(0.1, 0.1), (0.3, 0.1), (0.3, 0.3)]).action("go", "Go").build(ctx.slide_id, "v2")

    url = await serve_sectra_app(app)
    stored = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    updated = await sectra_mock.aio.modify(url, stored, application_id=APP_ID, press="go")
    assert pressed == [1]
    assert updated.id == stored.id and updated.version_id != stored.version_id
    [only] = sectra_mock.get_results(APP_ID, "slide-1")
    assert only.display_result == "v2" and only.application_version == "2.0.0"


async def test_notification_handler_gets_image_info(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()
    got: list[s.ImageInfo] = []

    @app.on_notification
    async def notified(ctx):  # type: ignore[no-untyped-def]
        got.append(await ctx.image_info())  # from the payload, no API call

    url = await serve_sectra_app(app)
    assert await sectra_mock.aio.notify(url, "slide-7", APP_ID) == {}
    assert got[0].id == "slide-7" and got[0].image_size.width > 0


async def test_handler_errors_are_safe_json(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        raise ValueError("patient Jane Doe 19121212-1212")

    @app.on_delete
    async def delete(ctx):  # type: ignore[no-untyped-def]
        return {"not": "allowed"}

    url = await serve_sectra_app(app)
    with pytest.raises(ServerError) as caught:
        await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert "ValueError" in str(caught.value) and "Jane" not in str(caught.value)
    stored = s.ResultResponse(id=1, version_id="v", slide_id="slide-1")
    with pytest.raises(ServerError, match="always"):
        await sectra_mock.aio.delete(url, stored, application_id=APP_ID)
    # a body that is not an invocation is the caller's fault: 400
    from sectra_core.http import HttpRequest
    from sectra_transports.trio import TrioTransport

    async with TrioTransport() as transport:
        response = await transport.handle_async_request(HttpRequest("POST", url, {"Content-Type": "application/json"}, b'{"action": "explode"}'))
        body = response.body if response.stream is None else b"".join([c async for c in response.stream])  # type: ignore[union-attr]
    assert response.status == 400 and b"error" in body and response.header("x-sectra-softwareversion") == "2.0.0"


async def test_invalid_results_are_refused_before_storing(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        # (0,0)-(1,1) overshoots a landscape slide: y ends at height/width (spec §2.4)
        return s.Result(slide_id=ctx.slide_id, data=s.ResultData(result=s.PrimitiveResult(content=[
            s.PrimitiveItem(polygons=[s.Polygon(points=[s.Point(x=0, y=0), s.Point(x=1, y=0)])])])))

    url = await serve_sectra_app(app)
    with pytest.raises(HTTPStatusError, match="at least 3 points"):
        await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert sectra_mock.get_results(APP_ID, "slide-1") == []


async def test_blueprint_in_users_own_app(sectra_mock: MockSectraServer, nursery: trio.Nursery) -> None:
    from quart_trio import QuartTrio

    from sectra_client.app import AppServer, create_blueprint

    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return box(ctx.slide_id, 0.5)

    web = QuartTrio("mine")

    @web.route("/health")
    async def health() -> str:
        return "ok"

    web.register_blueprint(create_blueprint(app, url_prefix="/ia/tissue", trusted_callbacks=[sectra_mock.url]))
    server = AppServer(web)
    base = await nursery.start(server.serve)
    try:
        answer = await sectra_mock.aio.trigger(f"{base}/ia/tissue", application_id=APP_ID, slide_id="s")
        assert answer.display_result == "done"
        report = await sectra_mock.aio.check_app(f"{base}/ia/tissue/")
        assert report.ok, report.problems
    finally:
        await server.aclose()


def test_asyncio_mode_refuses_async_handlers() -> None:
    from sectra_client.app import create_app

    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(ConfigurationError, match="mode='trio'"):
        create_app(app, mode="asyncio")
    with pytest.raises(ConfigurationError):
        app.on("create")(create)
    with pytest.raises(ConfigurationError, match="unknown action"):
        app.on("explode")


def test_asyncio_mode_serves_sync_handlers(mock: MockSectraServer) -> None:
    """Plain Quart on hypercorn's asyncio worker: sync handlers, sync client, thread-pool jobs."""
    import asyncio
    import socket
    import threading
    import time

    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from sectra_client.app import create_app

    app = make_app()

    @app.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        return box(ctx.slide_id, ctx.image_info().max_y, "asyncio")

    def work(job):  # type: ignore[no-untyped-def]
        job.progress(0.5)
        return box(job.slide_id, job.image_info().max_y, "from the thread pool")

    @app.on_notification
    def notified(ctx):  # type: ignore[no-untyped-def]
        ctx.start_job(work)  # asyncio mode: the hook's default runner is a thread pool

    asgi = create_app(app, mode="asyncio", url_prefix="/hook", trusted_callbacks=[mock.url])
    # hypercorn's asyncio serve does not report its port: pick a free one first.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    loop: list[asyncio.AbstractEventLoop] = []
    stop: list[asyncio.Event] = []

    async def main() -> None:
        loop.append(asyncio.get_running_loop())
        stop.append(asyncio.Event())
        await serve(asgi, config, shutdown_trigger=stop[0].wait)  # type: ignore[arg-type]

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}/hook"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = mock.trigger(url, application_id=APP_ID, slide_id="slide-1")
                break
            except ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert answer.display_result == "asyncio"
        assert mock.check_app(url).ok
        assert mock.notify(url, "slide-2", APP_ID) == {}
        deadline = time.monotonic() + 10
        while [r.display_result for r in mock.get_results(APP_ID, "slide-2")] != ["from the thread pool"]:
            assert time.monotonic() < deadline, mock.get_results(APP_ID, "slide-2")
            time.sleep(0.05)
    finally:
        loop[0].call_soon_threadsafe(stop[0].set)
        thread.join(10)
    assert not thread.is_alive()


async def test_many_invocations_at_once(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = make_app()

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        await trio.sleep(0.01 * (hash(ctx.slide_id) % 5))  # answers finish out of order
        return box(ctx.slide_id, (await ctx.image_info()).max_y, ctx.slide_id)

    url = await serve_sectra_app(app)
    answers: dict[str, s.ResultResponse] = {}

    async def one(k: int) -> None:
        answers[f"s{k}"] = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id=f"s{k}")

    async with trio.open_nursery() as nursery:
        for k in range(20):
            nursery.start_soon(one, k)
    assert all(a.display_result == slide for slide, a in answers.items()) and len(answers) == 20
    assert len({a.id for a in answers.values()}) == 20
