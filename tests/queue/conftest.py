"""Fixtures for the job-queue tests: a real ``redis-server`` on a free loopback port, a queue URL
per test (SQLite file or Redis database, each test run on both), and ``sectra worker``
subprocesses started through the real command line."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
APP_REF = "tests.queue.queue_app:app"
_databases = itertools.count(1)


@pytest.fixture
def sectra_mock_options() -> dict[str, Any]:
    """Mocks invent the slides the tests name."""
    return {"invent_slides": True}


@pytest.fixture(autouse=True)
def _close_runners(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every queue runner a test opens is closed after it (its Redis connections and SQLite file)."""
    from sectra_transports.app.queue import HueyJobRunner

    opened: list[HueyJobRunner] = []
    original = HueyJobRunner.__init__

    def tracked(self: HueyJobRunner, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(HueyJobRunner, "__init__", tracked)
    yield
    for runner in opened:
        runner.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server(folder: Path, *extra: str) -> Iterator[int]:
    """A real redis-server (no persistence, in ``folder``) while the generator runs; its port."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed: the Redis job-queue tests need it (apt-get install redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true, yet {reason}; .ci/run installs it")
        pytest.skip(f"SKIPPED THE REDIS QUEUE TESTS: {reason}")
    import redis

    for _ in range(5):  # --port 0 is not supported: pick a free port, retry if someone took it
        port = _free_port()
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder), "--databases", "64", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.05)
        if proc.poll() is None:
            break
    else:
        pytest.fail("redis-server did not start on a free port")
    del redis
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def redis_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server for the session (no persistence, in a temp dir); its port."""
    yield from _redis_server(tmp_path_factory.mktemp("redis"))


#: The password of :func:`redis_password_port`'s server.
REDIS_PASSWORD = "right-redis-pw"


@pytest.fixture(scope="session")
def redis_password_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real redis-server that requires :data:`REDIS_PASSWORD`; its port."""
    yield from _redis_server(tmp_path_factory.mktemp("redis-pw"), "--requirepass", REDIS_PASSWORD)


#: The secret the tests' apps and workers share on Redis (SQLite queues make their own beside the file).
TEST_SECRET = "test-queue-secret-0123456789abcdef"


@pytest.fixture(params=["sqlite", "redis"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh queue: a SQLite file, or an emptied database of the session's redis-server (with
    ``SECTRA_QUEUE_SECRET`` set, as a Redis queue needs)."""
    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobs.db"
    import redis

    port = request.getfixturevalue("redis_port")
    db = next(_databases) % 64
    with redis.Redis(port=port, db=db) as client:
        client.flushdb()
    monkeypatch.setenv("SECTRA_QUEUE_SECRET", TEST_SECRET)
    return f"redis://127.0.0.1:{port}/{db}"


@dataclass
class WorkerProc:
    """A running ``sectra worker`` subprocess; ``out``/``err`` are its stdout (health) and stderr."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    stopped: bool = field(default=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stdout(self) -> str:
        return self.out.read_text()

    def stderr(self) -> str:
        return self.err.read_text()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.stopped = True

    async def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        with trio.fail_after(timeout):
            while self.proc.poll() is None:
                await trio.sleep(0.05)
        self.stopped = True
        return int(self.proc.returncode)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Awaitable[WorkerProc]]]:
    """``await start_worker(queue_url, mock, *args, env={...}, cwd=folder)``: a ``sectra worker``
    for the test app (thread workers unless args say otherwise), trusting ``mock``; returns once
    it is ready."""
    started: list[WorkerProc] = []
    names = itertools.count(1)

    async def start(queue_url: str, mock: Any, *args: str, env: dict[str, str] | None = None,
                    ready: bool = True, cwd: Path = ROOT) -> WorkerProc:
        n = next(names)
        out, err = tmp_path / f"worker{n}.out", tmp_path / f"worker{n}.err"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SECTRA_")}
        environ.update({
            # In front of the inherited path, not instead of it: packages installed with
            # `pip install --target DIR` + PYTHONPATH=DIR must stay importable in the worker.
            "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]),
            "SECTRA_QUEUE": queue_url, "SECTRA_TRUSTED_CALLBACKS": mock.callback_info().url,
            **({"SECTRA_QUEUE_SECRET": TEST_SECRET} if queue_url.startswith("redis") else {}),
            **(env or {}),
        })
        argv = [sys.executable, "-m", "sectra_client", "worker", APP_REF, "--lease", "1.5", "--health-interval", "0.5"]
        if "--worker-type" not in args:
            argv += ["--worker-type", "thread"]
        with out.open("wb") as fo, err.open("wb") as fe:
            proc = subprocess.Popen([*argv, *args], cwd=cwd, env=environ, stdout=fo, stderr=fe)
        worker = WorkerProc(proc, out, err)
        started.append(worker)
        if ready:
            with trio.fail_after(30):
                while '"state": "ready"' not in worker.stdout():
                    if proc.poll() is not None:
                        raise AssertionError(f"the worker exited {proc.returncode}: {worker.stderr()}")
                    await trio.sleep(0.05)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)
            try:
                worker.proc.wait(20)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = trio.current_time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if trio.current_time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await trio.sleep(0.05)
