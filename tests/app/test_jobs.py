"""Long-running analyses: a queued result at once, progress on it, the final result under the same id."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from sectra_client.app import AnalysisApp, AsyncJob, ExecutorJobRunner, JobSpec, PrimitiveBuilder, SyncJob, TrioJobRunner
from sectra_core import schemas as s
from sectra_core.errors import ConfigurationError
from sectra_core.hookspecs import hookimpl
from sectra_core.plugins import make_plugins
from sectra_mock import MockSectraServer

Serve = Callable[..., Awaitable[str]]
APP_ID = "long"


def final(slide_id: str, text: str = "42 cells") -> s.Result:
    return PrimitiveBuilder().label((0.2, 0.2), text).build(slide_id, text)


def make_app(runner: Any, **options: Any) -> AnalysisApp:
    return AnalysisApp(application_id=APP_ID, display_name="Long", manufacturer="Acme", app_version="3.1.0",
                       job_runner=runner, **options)


async def test_queued_progress_then_final_same_id(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    runner = TrioJobRunner()
    app = make_app(runner)
    step = trio.Event()
    resume = trio.Event()

    async def work(job: AsyncJob) -> s.Result:
        job.min_interval = 0.0
        info = await job.image_info()
        await job.progress(0.5, "Counting cells")
        step.set()
        await resume.wait()
        return final(job.slide_id, f"{info.image_size.width} px wide")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return await ctx.start_job(work)

    url = await serve_sectra_app(app)
    answer = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert answer.display_result == "Analysis queued" and answer.application_version == "3.1.0"
    assert answer.display_properties["Progress"] == "0 %"
    placeholder = answer.data.result.content[0].polygons[0].points
    assert placeholder[2].y == pytest.approx(sectra_mock.image_info("slide-1").max_y)  # width-normalised
    await step.wait()
    [running] = sectra_mock.get_results(APP_ID, "slide-1")
    assert running.id == answer.id and running.display_result == "Counting cells (50 %)"
    resume.set()
    await runner.join()
    [done] = sectra_mock.get_results(APP_ID, "slide-1")
    assert done.id == answer.id and done.display_result.endswith("px wide")
    assert done.version_id not in (answer.version_id, running.version_id)


async def test_cancel_invocation_cancels_the_job(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    runner = TrioJobRunner()
    app = make_app(runner)
    started = trio.Event()

    async def work(job: AsyncJob) -> s.Result:
        started.set()
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return await ctx.start_job(work)

    url = await serve_sectra_app(app)
    invocation = sectra_mock.build_create(APP_ID, "slide-1")
    answer = await sectra_mock.aio.trigger(url, invocation=invocation)
    await started.wait()
    assert await sectra_mock.aio.cancel(url, application_id=APP_ID, slide_id="slide-1",
                                        cancellation_token=invocation.cancellation_token) == []
    await runner.join()
    [result] = sectra_mock.get_results(APP_ID, "slide-1")
    assert result.id == answer.id and result.display_result == "Analysis cancelled"


async def test_failure_is_shown_without_phi(sectra_mock: MockSectraServer, serve_sectra_app: Serve,
                                            caplog: pytest.LogCaptureFixture) -> None:
    runner = TrioJobRunner()
    app = make_app(runner)

    async def work(job: AsyncJob) -> s.Result:
        raise RuntimeError("Jane Doe 19121212-1212 has no tissue")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return await ctx.start_job(work)

    url = await serve_sectra_app(app)
    with caplog.at_level(logging.INFO):
        await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
        await runner.join()
    [result] = sectra_mock.get_results(APP_ID, "slide-1")
    assert result.display_result == "Analysis failed (RuntimeError)"
    assert "Jane" not in caplog.text and sectra_mock.app_token(APP_ID) not in caplog.text  # the callback token
    assert "RuntimeError" in caplog.text


async def test_sync_work_in_a_thread_with_cancel(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    runner = TrioJobRunner()
    app = make_app(runner)
    started = threading.Event()
    release = threading.Event()

    def work(job: SyncJob) -> s.Result:
        job.min_interval = 0.0
        job.progress(0.1)
        started.set()
        release.wait(10)
        job.progress(0.9)  # raises JobCancelled once cancelled
        return final(job.slide_id)

    @app.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        return ctx.start_job(work)  # a sync handler starting sync work

    url = await serve_sectra_app(app)
    invocation = sectra_mock.build_create(APP_ID, "slide-1")
    answer = await sectra_mock.aio.trigger(url, invocation=invocation)
    await trio.to_thread.run_sync(started.wait, 10)
    await sectra_mock.aio.cancel(url, application_id=APP_ID, slide_id="slide-1",
                                 cancellation_token=invocation.cancellation_token)
    release.set()
    await runner.join()
    [result] = sectra_mock.get_results(APP_ID, "slide-1")
    assert result.id == answer.id and result.display_result == "Analysis cancelled"


async def test_notification_reuses_the_latest_result(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    runner = TrioJobRunner()
    app = make_app(runner)

    async def work(job: AsyncJob) -> s.Result:
        return final(job.slide_id, "triaged")

    @app.on_notification
    async def notified(ctx):  # type: ignore[no-untyped-def]
        await ctx.start_job(work, reuse=True)

    url = await serve_sectra_app(app)
    for _ in range(3):
        await sectra_mock.aio.notify(url, "slide-9", APP_ID)
        await runner.join()
    [result] = sectra_mock.get_results(APP_ID, "slide-9")  # one result, updated in place
    assert result.display_result == "triaged"


def test_executor_runner_runs_sync_jobs(mock: MockSectraServer) -> None:
    from sectra_client import SectraClient

    with SectraClient(url=mock.url, token=mock.token) as client:
        placeholder = client.create_results(APP_ID, final("slide-1", "queued"))
    spec = JobSpec(application_id=APP_ID, slide_id="slide-1", callback=mock.callback_info(),
                   result_id=placeholder.id, version_id=placeholder.version_id, app_version="1", cancellation_token="tok")
    assert mock.token not in repr(spec) and "callback" not in repr(spec)
    runner = ExecutorJobRunner(max_workers=1)
    runner.submit(spec, lambda job: final(job.slide_id, "from a thread"))
    runner.join(10)
    runner.shutdown()
    [result] = mock.get_results(APP_ID, "slide-1")
    assert result.display_result == "from a thread" and result.application_version == "1"

    async def async_work(job: AsyncJob) -> s.Result:
        return final(job.slide_id)

    with pytest.raises(ConfigurationError, match="trio"):
        ExecutorJobRunner().submit(spec, async_work)


async def test_job_runner_comes_from_the_plugin_hook(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    submitted: list[JobSpec] = []

    class Queue:
        def submit(self, spec: JobSpec, work: Any) -> None:
            submitted.append(spec)

        def cancel(self, cancellation_token: str) -> bool:
            return False

    class QueuePlugin:
        @hookimpl
        def sectra_make_job_runner(self, mode: str) -> Any:
            assert mode == "trio"
            return Queue()

    app = make_app(None, plugins=make_plugins(entry_points=False, extra=[QueuePlugin()]))

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        return await ctx.start_job(lambda job: None)

    url = await serve_sectra_app(app)
    answer = await sectra_mock.aio.trigger(url, application_id=APP_ID, slide_id="slide-1")
    assert [sp.result_id for sp in submitted] == [answer.id]
    assert submitted[0].callback.url == sectra_mock.url
