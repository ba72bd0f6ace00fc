"""App factories for the conformance tests (issue #29): apps that pass ``check_app_full`` and
apps broken on purpose, each in exactly one way, so each check is seen to fail."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import msgspec
import trio

from sectra_client.app import AnalysisApp, AsyncInvocationContext, AsyncJob, InvocationContext, SyncJob
from sectra_core import schemas as s
from sectra_core.errors import AuthenticationError, JobCancelled


def _label(slide_id: str, text: str, y: float = 0.1) -> s.Result:
    point = s.Point(x=0.5, y=y)
    return s.Result(slide_id=slide_id, display_result=text, application_version="1",
                    data=s.ResultData(result=s.PrimitiveResult(content=[s.PrimitiveItem(labels=[s.Label(location=point, label=text)])])))


def _new(app_id: str = "broken", **options: object) -> AnalysisApp:
    return AnalysisApp(application_id=app_id, display_name=app_id.title(), manufacturer="Tests", app_version="1",
                       **options)  # type: ignore[arg-type]


def simple(y: float = 0.1, sleep: float = 0.0, **options: object) -> AnalysisApp:
    """Answers ``create`` with its final result; ``y=50`` draws below the slide, ``sleep`` answers late."""
    app = _new(**options)

    @app.on_create
    def create(ctx: InvocationContext) -> s.Result:
        time.sleep(sleep)  # the slow app: works in the request instead of the background
        return _label(ctx.slide_id, "done", y)

    return app


def duplicate_stores_twice() -> AnalysisApp:
    """Runs a repeated invocation again (its de-duplication turned off): two results for one click."""
    return simple(dedup_window=0)


def multi_area() -> AnalysisApp:
    """A correct ``multiArea`` app: one label per drawn area."""
    app = _new("areas", input_type="multiArea")

    @app.on_create
    def create(ctx: InvocationContext) -> s.Result:
        inp = ctx.invocation.input
        assert isinstance(inp, s.MultiAreaInput)
        labels = [s.Label(location=area.points[0], label=f"area {i}") for i, area in enumerate(inp.content.polygons)]
        return s.Result(slide_id=ctx.slide_id, display_result=f"{len(labels)} areas", application_version="1",
                        data=s.ResultData(result=s.PrimitiveResult(content=[s.PrimitiveItem(labels=labels)])))

    return app


def refuses_a_tag() -> AnalysisApp:
    """Declares two tags but fails on the second one."""
    app = _new("tags", input_type="taggedPolygon", tags=["Tumour", "Stroma"])

    @app.on_create
    def create(ctx: InvocationContext) -> s.Result:
        inp = ctx.invocation.input
        assert isinstance(inp, s.TaggedPolygonInput)
        if inp.content.tag_index != 0:
            raise ValueError("only the first tag is handled")
        return _label(ctx.slide_id, "tumour")

    return app


def no_progress() -> AnalysisApp:
    """A background job that never reports progress: "queued" until, suddenly, the result."""
    app = _new()

    async def work(job: AsyncJob) -> s.Result:
        await trio.sleep(0.3)
        return _label(job.slide_id, "done")

    @app.on_create
    async def create(ctx: AsyncInvocationContext) -> s.ResultResponse:
        return await ctx.start_job(work)

    return app


def cancel_ignored() -> AnalysisApp:
    """A thread job that swallows the cancellation and stores its result anyway."""
    app = _new()

    def work(job: SyncJob) -> s.Result:
        job.min_interval = 0.1  # show every step: the check's quiet spell is short under deadline=2
        for step in range(8):
            try:
                job.progress(step / 8)
            except JobCancelled:
                pass  # the mistake: carries on after the user cancelled
            time.sleep(0.1)
        return _label(job.slide_id, "done")

    @app.on_create
    def create(ctx: InvocationContext) -> s.ResultResponse:
        return ctx.start_job(work)

    return app


def hangs_on_refused_token() -> AnalysisApp:
    """A job that, once its token is refused, waits forever instead of ending with a status."""
    app = _new()

    async def work(job: AsyncJob) -> s.Result:
        try:
            await job.progress(0.5)
        except AuthenticationError:
            await trio.sleep_forever()  # the mistake: the result says "queued" for ever
        await trio.sleep(0.1)
        return _label(job.slide_id, "done")

    @app.on_create
    async def create(ctx: AsyncInvocationContext) -> s.ResultResponse:
        return await ctx.start_job(work)

    return app


def notification_fails(create: bool = True) -> AnalysisApp:
    """Answers image notifications with an error (500); ``create=False``: notifications only."""
    app = simple() if create else _new()

    @app.on_notification
    def notified(ctx: InvocationContext) -> None:
        raise RuntimeError("could not read the notification")

    return app


def delete_fails() -> AnalysisApp:
    """Answers ``delete`` with an error instead of ``{}``."""
    app = simple()

    @app.on_delete
    def deleted(ctx: InvocationContext) -> None:
        raise RuntimeError("delete not handled")

    return app


def no_retry(retry_on: frozenset[int] = frozenset()) -> AnalysisApp:
    """Stores its result with a bare urllib POST, retried once only after the statuses in
    ``retry_on``: any other 503 or 429 on it fails the create."""
    app = _new("fragile")

    @app.on_create
    def create(ctx: InvocationContext) -> s.ResultResponse:
        cb = ctx.invocation.callback_info
        result = _label(ctx.slide_id, "done")
        request = urllib.request.Request(
            f"{cb.url.rstrip('/')}/applications/fragile/results", data=msgspec.json.encode(result), method="POST",
            headers={"Authorization": f"Bearer {cb.token}", "Content-Type": "application/json"})
        for attempt in range(2):
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    return msgspec.json.decode(answer.read(), type=s.ResultResponse)
            except urllib.error.HTTPError as exc:  # a 503/429 and the app gives up: what the check must catch
                exc.close()
                if attempt == 0 and exc.code in retry_on:
                    time.sleep(1.0)
                    continue
                raise RuntimeError(f"store failed with HTTP {exc.code}") from None
        raise AssertionError("unreachable")

    return app


def unstored_answer() -> AnalysisApp:
    """Answers ``create`` with a result it never stored (an invented id)."""
    app = _new()

    @app.on_create
    def create(ctx: InvocationContext) -> s.ResultResponse:
        result = _label(ctx.slide_id, "done")
        return s.ResultResponse(id="999999", version_id="v1", **result.content_fields())

    return app


def gallery_button_fails() -> AnalysisApp:
    """The patch-gallery example, but pressing its button answers an error."""
    from examples.apps import patch_gallery

    app = AnalysisApp(patch_gallery.app.registration, app_version="1")
    app.on_create(patch_gallery.create)

    @app.on_modify
    def modify(ctx: InvocationContext) -> s.ResultResponse:
        raise RuntimeError("the button is not wired")

    return app


def slow_first_job(seconds: float = 3.0) -> AnalysisApp:
    """Its first background job outlasts the check's deadline (later ones are quick), showing
    progress all along: the job never settles in time."""
    app = _new()
    runs: list[int] = []

    async def work(job: AsyncJob) -> s.Result:
        job.min_interval = 0.1
        steps = int(10 * (seconds if not runs else 0.3))
        runs.append(1)
        for step in range(steps):
            await job.progress(step / steps)
            await trio.sleep(0.1)
        return _label(job.slide_id, "done")

    @app.on_create
    async def create(ctx: AsyncInvocationContext) -> s.ResultResponse:
        return await ctx.start_job(work)

    return app
