"""Issue #26: the queue as an attacker, an operator and a new user meet it. Planted pickles in the
store run nothing; a SIGKILLed worker leaves no job process behind; process workers count their
jobs; a relative SQLite path is resolved and compared; an unreachable store is one line a try and
a non-zero exit. Every test runs on SQLite and on a real Redis where both apply."""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sectra_core import schemas as s
from sectra_mock import MockSectraServer
from sectra_transports.app.queue import runner_for
from tests.queue.conftest import ROOT, TEST_SECRET, WorkerProc, _free_port, until
from tests.queue.queue_app import make_app

APP = "queued"
Start = Callable[..., Awaitable[Any]]


class _Planted:
    """What an attacker writes into the store: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


def _texts(mock: MockSectraServer, slide: str) -> list[str]:
    return [r.display_result for r in mock.get_results(APP, slide)]


def _health(worker: WorkerProc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in worker.stdout().splitlines() if line.startswith("{")]


async def _create(mock: MockSectraServer, url: str, slide: str, **context: Any) -> s.ResultResponse:
    return await mock.aio.trigger(url, invocation=mock.build_create(APP, slide, context=context))


async def test_planted_pickles_in_the_task_queue_and_the_records_run_nothing(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mock = await start_sectra_mock()
    app = make_app(queue_url)
    url = await serve_sectra_app(app)
    runner = runner_for(app)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Planted(marker))
    # Huey's own task queue, through Huey's public storage call, as a writer of the store would.
    runner.backend.huey("default").storage.enqueue(evil)
    # The SDK's records: a job, and the claim an invocation for slide-e reads.
    from sectra_transports.app.queue.runner import work_ref
    from tests.queue.queue_app import analyse

    runner.store.write({"job:planted": evil, runner._claim_key(APP, "slide-e", work_ref(analyse)): evil})
    with caplog.at_level(logging.WARNING):
        answer = await _create(mock, url, "slide-e")  # the app reads the planted claim
        assert answer.display_result == "Analysis queued"
        worker = await start_worker(queue_url, mock)
        await until(lambda: _texts(mock, "slide-e") == ["done"], "the real job to finish")
        await until(lambda: "refused a queue message" in worker.stderr(), "the worker's warning")
        for _ in range(3):
            runner.records()  # read again and again: logged once
    assert not marker.exists()
    assert "not the SDK's" in caplog.text and caplog.text.count("'job:planted'") == 1
    assert "Traceback" not in worker.stderr()
    # The queue keeps working after the refusals.
    await _create(mock, url, "slide-f")
    await until(lambda: _texts(mock, "slide-f") == ["done"], "a job after the refusals")
    assert not marker.exists()


async def test_a_message_signed_with_another_secret_is_refused(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
) -> None:
    mock = await start_sectra_mock()
    url = await serve_sectra_app(make_app(queue_url))
    await _create(mock, url, "slide-s")
    worker = await start_worker(queue_url, mock, env={"SECTRA_QUEUE_SECRET": "another-secret-0123456789abcdef"})
    await until(lambda: "wrong signature" in worker.stderr(), "the refusal")
    assert _texts(mock, "slide-s") == ["Analysis queued"]


def test_a_redis_queue_needs_the_shared_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from sectra_core.errors import ConfigurationError
    from sectra_transports.app.queue import HueyJobRunner

    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    with pytest.raises(ConfigurationError, match="SECTRA_QUEUE_SECRET"):
        HueyJobRunner("redis://127.0.0.1:1/0", name="a")


def test_the_sqlite_secret_is_created_0600_beside_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sectra_transports.app.queue import HueyJobRunner

    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    HueyJobRunner(f"sqlite:///{tmp_path}/jobs.db", name="a")
    secret = tmp_path / "jobs.db.secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and len(secret.read_bytes()) >= 32


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
async def test_job_processes_die_with_a_sigkilled_worker(
    queue_url: str, start_sectra_mock: Start, start_worker: Start,
) -> None:
    mock = await start_sectra_mock()
    worker = await start_worker(queue_url, mock, "--worker-type", "process", "--workers", "2")
    children = await until(lambda: _children(worker.pid) if len(_children(worker.pid)) >= 2 else None, "job processes")
    worker.kill()  # only the worker's PID, as a supervisor's timeout does
    await until(lambda: not any(_alive(pid) for pid in children), "the job processes to be gone", timeout=15)


async def test_process_workers_count_their_jobs_in_the_health_lines(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start,
) -> None:
    mock = await start_sectra_mock()
    url = await serve_sectra_app(make_app(queue_url))
    worker = await start_worker(queue_url, mock, "--worker-type", "process", "--workers", "2")
    for i in range(3):
        await _create(mock, url, f"slide-h{i}")
    await until(lambda: all(_texts(mock, f"slide-h{i}") == ["done"] for i in range(3)), "three jobs")
    await until(lambda: any(h["done"] == 3 for h in _health(worker)), "the health line to count 3 jobs")
    assert await worker.terminate() == 0
    assert _health(worker)[-1]["done"] == 3


async def test_a_relative_sqlite_path_is_resolved_logged_and_compared(
    start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    app_dir, worker_dir = tmp_path / "app", tmp_path / "worker"
    app_dir.mkdir()
    worker_dir.mkdir()
    monkeypatch.chdir(app_dir)
    mock = await start_sectra_mock()
    with caplog.at_level(logging.INFO):
        url = await serve_sectra_app(make_app("sqlite:///jobs.db"))
    assert str(app_dir / "jobs.db") in caplog.text  # the app's startup log names the absolute file
    worker = await start_worker("sqlite:///jobs.db", mock, cwd=worker_dir)
    first = _health(worker)[0]
    assert first["location"] == str(worker_dir / "jobs.db")
    err = worker.stderr()
    assert "is relative" in err and "no app has opened the queue" in err and str(worker_dir / "jobs.db") in err
    # The app, queuing a job no worker of its file will see, says so too.
    with caplog.at_level(logging.WARNING):
        await _create(mock, url, "slide-rel")
    assert f"no `sectra worker` has used the queue {app_dir / 'jobs.db'}" in caplog.text
    # The same relative path from the app's folder: the same file, no warning about another one.
    same = await start_worker("sqlite:///jobs.db", mock, cwd=app_dir)
    assert _health(same)[0]["location"] == str(app_dir / "jobs.db")
    assert "no app has opened" not in same.stderr() and "different files" not in same.stderr()
    await until(lambda: _texts(mock, "slide-rel") == ["done"], "the job, run by the worker of the app's file")


@pytest.mark.parametrize("case", ["unreachable", "wrong-password"])
def test_an_unreachable_store_is_one_line_a_try_then_a_non_zero_exit(
    case: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    if case == "unreachable":
        url = f"redis://:s3cret-pw@127.0.0.1:{_free_port()}/0"
    else:
        url = f"redis://:s3cret-pw@127.0.0.1:{request.getfixturevalue('redis_password_port')}/0"  # not its password
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SECTRA_")}
    environ.update({"PYTHONPATH": str(ROOT), "SECTRA_QUEUE": url, "SECTRA_QUEUE_SECRET": TEST_SECRET})
    done = subprocess.run(
        [sys.executable, "-m", "sectra_client", "worker", "tests.queue.queue_app:app", "--give-up-after", "2"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert 2 <= len(lines) <= 8, done.stderr
    assert "Traceback" not in done.stderr and "s3cret-pw" not in done.stderr + done.stdout
    assert all("redis://***@127.0.0.1" in line for line in lines), done.stderr
    assert "cannot be reached" in lines[0] and "--give-up-after" in lines[-1]


async def test_the_app_server_calls_the_store_off_the_trio_loop(
    queue_url: str, start_sectra_mock: Start, serve_sectra_app: Start, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An async handler's start_job (claim and submit) and Sectra's cancel wait on the store in a
    thread: the event loop that serves every invocation never blocks on SQLite or Redis."""
    import threading

    from sectra_client.app import AnalysisApp
    from tests.queue.queue_app import analyse

    loop_thread = threading.get_ident()
    app = AnalysisApp(application_id=APP, display_name="Q", manufacturer="T", app_version="1.0", queue=queue_url)

    @app.on_create
    async def create(ctx: Any) -> Any:
        return await ctx.start_job(analyse)

    mock = await start_sectra_mock()
    url = await serve_sectra_app(app)
    store = runner_for(app).store
    on_loop: list[str] = []
    called: list[str] = []
    for name in ("get_many", "write", "put_if_absent", "replace_if", "delete_if", "scan"):
        original = getattr(store, name)

        def watched(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            called.append(_name)
            if threading.get_ident() == loop_thread:
                on_loop.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, watched)
    invocation = mock.build_create(APP, "slide-loop")
    answer = await mock.aio.trigger(url, invocation=invocation)
    assert answer.display_result == "Analysis queued"
    assert await mock.aio.cancel(url, application_id=APP, slide_id="slide-loop",
                                 cancellation_token=invocation.cancellation_token) == []
    assert {"put_if_absent", "write", "get_many"} <= set(called)  # claim, submit, cancel all ran
    assert on_loop == []
    [record] = runner_for(app).records()
    assert runner_for(app).cancel_requested(record.job_id)


async def test_a_store_outage_while_running_is_one_line_and_the_worker_carries_on(
    start_sectra_mock: Start, serve_sectra_app: Start, start_worker: Start, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
) -> None:
    """Redis goes away under a running worker: one line (not a traceback per poll), health lines
    saying so; when Redis is back the worker takes jobs again."""
    import shutil

    from tests.queue.conftest import _redis_server

    request.getfixturevalue("redis_port")  # skips (or fails under CI=true) without redis-server
    server = _redis_server(tmp_path)
    port = next(server)
    url = f"redis://127.0.0.1:{port}/0"
    monkeypatch.setenv("SECTRA_QUEUE_SECRET", TEST_SECRET)
    mock = await start_sectra_mock()
    worker = await start_worker(url, mock)
    server.close()  # redis-server stopped (SIGTERM, waited for)
    await until(lambda: sum(h.get("store") == "unreachable" for h in _health(worker)) >= 4, "health lines in the outage")
    outage = [line for line in worker.stderr().splitlines() if "cannot be reached" in line]
    assert 1 <= len(outage) <= 2 and "Traceback" not in worker.stderr(), worker.stderr()
    binary = shutil.which("redis-server")
    assert binary is not None
    back = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await until(lambda: _health(worker)[-1].get("store") == "ok", "the worker to reach Redis again")
        app_url = await serve_sectra_app(make_app(url))
        await _create(mock, app_url, "slide-back")
        await until(lambda: _texts(mock, "slide-back") == ["done"], "a job after the outage")
    finally:
        back.terminate()
        back.wait(10)
