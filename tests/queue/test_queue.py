"""The job queue end to end (issue #16): the app served on loopback with the mock, jobs in a real
SQLite file or a real Redis, run by ``sectra worker`` subprocesses. Every test runs on both."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from sectra_core import schemas as s
from sectra_mock import MockSectraServer
from sectra_transports.app.queue import runner_for
from sectra_transports.app.queue.worker import ACCESS_EXPIRED
from tests.queue.conftest import WorkerProc, until
from tests.queue.queue_app import make_app

APP = "queued"
Start = Callable[..., Awaitable[Any]]


def _texts(mock: MockSectraServer, slide: str) -> list[str]:
    return [r.display_result for r in mock.get_results(APP, slide)]


def _marks(folder: Path, slide: str) -> list[int]:
    """The pids that started an attempt of the job on ``slide``, oldest first."""
    files = sorted(folder.glob(f"{slide}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
    return [int(p.name.split(".")[1]) for p in files]


async def _serve(queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, **mock_options: Any) -> tuple[MockSectraServer, str, Any]:
    mock = await start_sectra_mock(**mock_options)
    app = make_app(queue_url)
    url = await serve_sectra_app(app)
    return mock, url, app


async def _create(mock: MockSectraServer, url: str, slide: str, **context: Any) -> tuple[s.ResultResponse, str]:
    invocation = mock.build_create(APP, slide, context=context)
    answer = await mock.aio.trigger(url, invocation=invocation)
    return answer, invocation.cancellation_token


def _health(worker: WorkerProc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.stdout().splitlines() if line.startswith("{")]


async def test_sigkilled_worker_job_runs_again_with_one_final_result(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    first = await start_worker(queue_url, mock)
    answer, _ = await _create(mock, url, "slide-k", steps=600, step_s=0.05, marks=str(tmp_path), fast_rerun=True)
    assert answer.display_result == "Analysis queued"
    await until(lambda: _marks(tmp_path, "slide-k"), "the job to start")
    second = await start_worker(queue_url, mock)  # started after the job was taken: it cannot have it
    assert _marks(tmp_path, "slide-k") == [first.pid]
    first.kill()  # SIGKILL mid-job: no cleanup, no final status, the lease stops beating
    await until(lambda: _texts(mock, "slide-k") == ["done"], "the re-run's final result")
    await trio.sleep(2.0)  # past another lease: nothing runs it a third time
    assert _marks(tmp_path, "slide-k") == [first.pid, second.pid]
    [final] = mock.get_results(APP, "slide-k")
    assert final.id == answer.id  # the re-run owned the same result: one result, final
    assert any(h["requeued"] == 1 for h in _health(second))
    assert "stopped beating" in second.stderr()


async def test_a_job_taken_off_the_queue_by_a_worker_that_died_runs_again(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    """SIGKILL between Huey's dequeue and the job's pickup (found by `bench/job_queue.py`'s crash
    run: one slide never got its final result): the record says "queued", no task is left. Played
    here by taking the task off the queue by hand; a worker must notice and queue it again."""
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    answer, _ = await _create(mock, url, "slide-d", marks=str(tmp_path))
    runner = runner_for(app)
    [record] = runner.records()
    taken = runner.backend.huey(record.queue).dequeue()  # what the dead worker had done
    assert taken is not None and str(taken.id) == record.task_id
    worker = await start_worker(queue_url, mock)
    await until(lambda: _texts(mock, "slide-d") == ["done"], "the lost job's final result", timeout=30)
    [final] = mock.get_results(APP, "slide-d")
    assert final.id == answer.id and len(_marks(tmp_path, "slide-d")) == 1
    assert "took it off the queue and stopped before starting it" in worker.stderr()
    await until(lambda: runner.records() == [], "the job's records to go")


async def test_duplicate_invocations_while_queued_or_running_start_one_job(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    context = {"steps": 20, "step_s": 0.05, "marks": str(tmp_path)}
    first, _ = await _create(mock, url, "slide-d", **context)
    queued_copy, _ = await _create(mock, url, "slide-d", **context)  # no worker yet: still queued
    assert queued_copy.id == first.id
    await start_worker(queue_url, mock)
    await until(lambda: _marks(tmp_path, "slide-d"), "the job to start")
    running_copy, _ = await _create(mock, url, "slide-d", **context)
    assert running_copy.id == first.id
    other, _ = await _create(mock, url, "slide-e", marks=str(tmp_path))  # another slide: its own job
    assert other.id != first.id
    await until(lambda: _texts(mock, "slide-d") == ["done"] and _texts(mock, "slide-e") == ["done"], "both jobs")
    assert len(_marks(tmp_path, "slide-d")) == 1
    # Once the job has finished, a new invocation runs again.
    again, _ = await _create(mock, url, "slide-d", marks=str(tmp_path))
    assert again.id != first.id
    await until(lambda: len(_marks(tmp_path, "slide-d")) == 2, "the new job")


@pytest.mark.parametrize("worker_type", ["process", "thread"])
async def test_async_work_runs_on_workers_with_progress_and_cancel(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
    worker_type: str,
) -> None:
    """``async def`` work: the worker runs it under trio (in a worker process or thread), its
    awaited progress reaches Sectra, and cancel stops it while it runs."""
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    await start_worker(queue_url, mock, "--worker-type", worker_type, "--workers", "2")
    answer, _ = await _create(mock, url, "slide-a", steps=30, step_s=0.05, marks=str(tmp_path), **{"async": True})
    assert answer.display_result == "Analysis queued"
    await until(lambda: any("%" in t for t in _texts(mock, "slide-a")), "an awaited progress() update")
    await until(lambda: _texts(mock, "slide-a") == ["done async"], "the async job's final result")
    [final] = mock.get_results(APP, "slide-a")
    assert final.id == answer.id
    _, token = await _create(mock, url, "slide-ac", steps=600, step_s=0.05, marks=str(tmp_path), **{"async": True})
    await until(lambda: _marks(tmp_path, "slide-ac"), "the long async job to start")
    assert await mock.aio.cancel(url, application_id=APP, slide_id="slide-ac", cancellation_token=token) == []
    await until(lambda: _texts(mock, "slide-ac") == ["Analysis cancelled"], "the cancelled status", timeout=15)
    await until(lambda: runner_for(app).records() == [], "the jobs' records to go")


async def test_cancel_revokes_a_queued_job(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    answer, token = await _create(mock, url, "slide-q", marks=str(tmp_path))
    runner = runner_for(app)
    [record] = runner.records()
    assert await mock.aio.cancel(url, application_id=APP, slide_id="slide-q", cancellation_token=token) == []
    assert runner.cancel_requested(record.job_id)  # the flag the worker reads when it picks the job up
    await start_worker(queue_url, mock)
    await until(lambda: _texts(mock, "slide-q") == ["Analysis cancelled"], "the cancelled status")
    assert _marks(tmp_path, "slide-q") == []  # the work never ran
    await until(lambda: runner.records() == [], "the job's records to go")


async def test_cancel_stops_a_running_job_at_its_next_progress(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    await start_worker(queue_url, mock, "--workers", "2")  # a free thread would take a lost lease at once
    _, token = await _create(mock, url, "slide-c", steps=600, step_s=0.05, marks=str(tmp_path))  # 30 s of work
    await until(lambda: _marks(tmp_path, "slide-c"), "the job to start")
    await until(lambda: runner_for(app).records() and runner_for(app).records()[0].state == "running", "running")
    await trio.sleep(3.5)  # over two leases (1.5 s): the heartbeat keeps the job from being run again
    assert len(_marks(tmp_path, "slide-c")) == 1
    assert await mock.aio.cancel(url, application_id=APP, slide_id="slide-c", cancellation_token=token) == []
    await until(lambda: _texts(mock, "slide-c") == ["Analysis cancelled"], "the cancelled status", timeout=15)


async def test_expired_token_falls_back_to_the_workers_service_credentials(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app, users={"svc": "svc-pw"})
    invocation = mock.build_create(APP, "slide-t")
    issued = mock.issue_token(APP)  # a token that can expire, as a real callback token does
    invocation = msgspec.structs.replace(
        invocation, callback_info=msgspec.structs.replace(invocation.callback_info, token=issued),
    )
    answer = await mock.aio.trigger(url, invocation=invocation)
    mock.revoke_tokens()  # the job outlived its token while queued
    logins = mock.logins
    worker = await start_worker(queue_url, mock, "--check-token-after", "0",
                                env={"SECTRA_USERNAME": "svc", "SECTRA_PASSWORD": "svc-pw"})
    await until(lambda: _texts(mock, "slide-t") == ["done"], "the job to finish with the service login")
    assert mock.get_results(APP, "slide-t")[0].id == answer.id
    assert mock.logins > logins
    assert "svc-pw" not in worker.stderr() + worker.stdout()


async def test_expired_token_without_credentials_fails_with_a_clear_text(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    await _create(mock, url, "slide-x")
    # The token is refused on the slide (expired) while the result store still takes the status.
    mock.faults.add("status", "image_info", status=401, times=1)
    worker = await start_worker(queue_url, mock, "--check-token-after", "0")
    await until(lambda: _texts(mock, "slide-x") == [ACCESS_EXPIRED], "the access-expired result")
    await until(lambda: "access expired" in worker.stderr(), "the logged reason")
    assert "SECTRA_USERNAME" in worker.stderr()  # the log says how to fix it


async def test_retention_purges_old_downloads(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    downloads = tmp_path / "downloads"
    (downloads / "old-slide").mkdir(parents=True)
    old, fresh = downloads / "old-slide" / "a.svs", downloads / "fresh.svs"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(downloads / "old-slide", (two_hours_ago, two_hours_ago))
    worker = await start_worker(queue_url, mock, "--downloads-dir", str(downloads), "--purge-downloads-older-than", "1h")
    await _create(mock, url, "slide-r", download=True)
    await until(lambda: not old.exists(), "the old download to be purged")
    await until(lambda: _texts(mock, "slide-r") == ["done"], "the job")
    assert fresh.exists() and (downloads / "slide-r.svs").exists()
    await until(lambda: not (downloads / "old-slide").exists(), "the emptied folder to go")
    await until(lambda: any(h["purged_files"] == 1 for h in _health(worker)), "the health line to count it")


async def test_sigterm_is_graceful_and_health_is_reported(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    worker = await start_worker(queue_url, mock)
    await _create(mock, url, "slide-g", steps=20, step_s=0.05, marks=str(tmp_path))
    await until(lambda: _marks(tmp_path, "slide-g"), "the job to start")
    assert await worker.terminate() == 0
    assert _texts(mock, "slide-g") == ["done"]  # the running job finished before the worker left
    states = [h["state"] for h in _health(worker)]
    assert states[0] == "ready" and states[-1] == "stopped" and "running" in states
    last = _health(worker)[-1]
    assert last["done"] == 1 and last["failed"] == 0 and last["app"] == APP and last["queue"] == "default"
    # A job queued while no worker runs stays queued for the next one.
    await _create(mock, url, "slide-h")
    await trio.sleep(0.5)
    assert [r.state for r in runner_for(app).records()] == ["queued"]
    await start_worker(queue_url, mock)
    await until(lambda: _texts(mock, "slide-h") == ["done"], "the next worker to run it")


async def test_named_queues_route_jobs(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start,
) -> None:
    mock, url, app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    default = await start_worker(queue_url, mock)  # the default queue only
    await _create(mock, url, "slide-gpu", gpu=True)
    await _create(mock, url, "slide-cpu")
    await until(lambda: _texts(mock, "slide-cpu") == ["done"], "the default-queue job")
    # Without --verbose, no log lines per job (Huey's two per task cost every job): the
    # consumer's start line only.
    assert "Huey consumer started" in default.stderr() and "Executing" not in default.stderr()
    assert _texts(mock, "slide-gpu") == ["Analysis queued"]
    await until(lambda: [r.queue for r in runner_for(app).records()] == ["gpu"], "only the gpu job left")
    await start_worker(queue_url, mock, "--queue", "gpu")
    await until(lambda: _texts(mock, "slide-gpu") == ["done"], "the gpu worker")


async def test_worker_processes_run_jobs_and_never_log_the_token(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start,
) -> None:
    mock, url, _app = await _serve(queue_url, start_sectra_mock, serve_sectra_app)
    worker = await start_worker(queue_url, mock, "--worker-type", "process", "--workers", "2", "--verbose")
    answers = [await _create(mock, url, f"slide-p{i}", steps=2) for i in range(6)]
    await until(lambda: all(_texts(mock, f"slide-p{i}") == ["done"] for i in range(6)), "six jobs")
    assert len({a.id for a, _ in answers}) == 6
    assert await worker.terminate() == 0
    token = mock.app_token(APP)
    logs = worker.stderr() + worker.stdout()
    assert "DEBUG" in logs and "Executing" in logs  # it did log, verbosely
    assert token not in logs
    if queue_url.startswith("sqlite"):
        path = Path(queue_url.removeprefix("sqlite:///"))
        for file in [path, *path.parent.glob(path.name + "-*")]:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
