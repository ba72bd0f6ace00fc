"""The job queue (issue #16): per-job overhead vs the in-process runner, and a load with a crash.

    python bench/job_queue.py [--jobs 200] [--load 500] [--no-redis]
    python bench/job_queue.py --tiny                      # a smoke run: a few jobs, seconds

The mock runs in its own process; the app is served in this one. In the same run:

* **overhead**: ``--jobs`` trivial jobs (no slide reads, one result write) from invocations to
  final results, with the in-process thread-pool runner (the baseline) and with the queue on
  SQLite and on Redis, consumed by ``sectra worker`` with 1 and 4 workers. Reported as jobs/s and
  as the added wall time per job, (queue − in-process) / jobs; bars: SQLite <= 20 ms, Redis <= 5 ms.
* **load**: ``--load`` invocations, 4 worker processes, every slide must end with exactly one
  final result; then the same with one worker SIGKILLed halfway (its job is re-run after the lease).

Needs ``redis-server`` on PATH for the Redis rows (``--no-redis`` skips them).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, this file would shadow the standard library's ``queue`` module for every import.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any  # noqa: E402

import urllib3  # noqa: E402

from sectra_client.app import AnalysisApp, AppServer, PrimitiveBuilder, create_app  # noqa: E402
from sectra_core import schemas as s  # noqa: E402
from sectra_core.app.messages import invocation_request  # noqa: E402
from sectra_transports.app.runners import ExecutorJobRunner, SyncJob  # noqa: E402

APP_ID = "bench-queue"
TOKEN = "bench-token"


def trivial(job: SyncJob) -> s.Result:
    """A job that does nothing but store its final result (what the overhead is measured on)."""
    builder = PrimitiveBuilder(None).polygon([(0, 0), (0.1, 0), (0.1, 0.1)])
    return builder.build(job.slide_id, "done")


def make_app(queue: str | None = None, job_runner: Any = None) -> AnalysisApp:
    """The benchmark's app: ``create`` starts :func:`trivial`."""
    app = AnalysisApp(application_id=APP_ID, display_name="Bench", manufacturer="Bench", queue=queue,
                      job_runner=job_runner, dedup_window=0)

    @app.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        return ctx.start_job(trivial)

    return app


app = make_app() if os.environ.get("SECTRA_QUEUE") else None  # what `sectra worker bench.job_queue:app` loads


def _invoke(pool: urllib3.PoolManager, app_url: str, mock_url: str, slide: str) -> None:
    message = s.CreateInvocation(
        application_id=APP_ID, slide_id=slide, callback_info=s.CallbackInfo(url=mock_url, token=TOKEN),
        cancellation_token=uuid.uuid4().hex, input=s.WholeSlideInput(), context={},
    )
    req = invocation_request(app_url, message)
    r = pool.request(req.method, req.url, body=req.body, headers=req.headers)
    if r.status != 200:
        raise RuntimeError(f"the app answered {r.status}: {r.data[:200]!r}")


def _final_texts(mock_url: str, slides: list[str]) -> list[list[str]]:
    from sectra_client import SectraClient

    with SectraClient(mock_url, TOKEN) as client:
        return [[r.display_result for r in client.get_all_results(slide, APP_ID)] for slide in slides]


def _wait_done(mock_url: str, slides: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(t == ["done"] for t in _final_texts(mock_url, slides[-5:])):  # cheap probe: the last ones
            if all(t == ["done"] for t in _final_texts(mock_url, slides)):
                return
        time.sleep(0.05)
    raise RuntimeError("jobs did not finish in time")


def _wait_drained(url: str, timeout: float) -> None:
    """Until the queue holds no job (every invocation was answered before this is called): a
    worker drops a job's records only after its final result is stored, so this is the queue's
    twin of the in-process runner's ``join()``. One cheap count per poll, where probing the mock
    for results would load the mock and the two cores the workers share while they work."""
    from sectra_transports.app.queue import QueueBackend

    storage = QueueBackend(url, APP_ID).control.storage
    def left() -> int:
        if url.startswith("sqlite"):
            return int(storage.sql("select count(*) from kv where queue = ?", (storage.name,), results=True)[0][0])
        return int(storage.conn.hlen(storage.result_key))

    deadline = time.monotonic() + timeout
    while left():
        if time.monotonic() > deadline:
            raise RuntimeError("jobs did not finish in time")
        time.sleep(0.01)


def _fire(app_url: str, mock_url: str, slides: list[str]) -> None:
    with urllib3.PoolManager(maxsize=8) as pool, ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda slide: _invoke(pool, app_url, mock_url, slide), slides))


def _workers(url: str, mock_url: str, n: int, processes: int = 1) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "SECTRA_QUEUE": url, "SECTRA_TRUSTED_CALLBACKS": mock_url}
    procs = []
    for _ in range(processes):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sectra_client", "worker", "bench.job_queue:app", "--workers", str(n),
             "--worker-type", "thread", "--lease", "3", "--health-interval", "3600"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        ))
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # the "ready" health line
    return procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(30)


def run_in_process(mock_url: str, slides: list[str], workers: int) -> float:
    """Seconds for the jobs with the thread-pool runner inside the app (the baseline)."""
    runner = ExecutorJobRunner(max_workers=workers)
    with AppServer(create_app(make_app(job_runner=runner), trusted_callbacks=[mock_url])).run() as base:
        start = time.perf_counter()
        _fire(f"{base}/", mock_url, slides)
        runner.join()
        elapsed = time.perf_counter() - start
    runner.shutdown()
    return elapsed


def run_queued(url: str, mock_url: str, slides: list[str], workers: int, *, processes: int = 1,
               kill_halfway: bool = False) -> float:
    """Seconds from the first invocation to every slide's final result, through the queue."""
    import bench.job_queue as importable  # run as a script this is __main__, which a worker cannot import

    procs = _workers(url, mock_url, workers, processes)
    try:
        with AppServer(create_app(importable.make_app(queue=url), trusted_callbacks=[mock_url])).run() as base:
            start = time.perf_counter()
            if kill_halfway:
                half = len(slides) // 2
                _fire(f"{base}/", mock_url, slides[:half])
                procs[0].send_signal(signal.SIGKILL)  # mid-load, most likely mid-job
                procs[0].wait()
                _fire(f"{base}/", mock_url, slides[half:])
            else:
                _fire(f"{base}/", mock_url, slides)
            _wait_drained(url, timeout=600)
            elapsed = time.perf_counter() - start
            _wait_done(mock_url, slides, timeout=60)  # not timed: checking is not the queue's work
        texts = _final_texts(mock_url, slides)
        bad = [slide for slide, t in zip(slides, texts) if t != ["done"]]
        if bad:
            raise RuntimeError(f"{len(bad)} slides without exactly one final result, e.g. {bad[0]}: {texts[slides.index(bad[0])]}")
        return elapsed
    finally:
        _stop(procs)


def _redis(folder: str) -> tuple[subprocess.Popen[bytes], int] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", folder], stdout=subprocess.DEVNULL)
    import redis

    for _ in range(200):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--load", type=int, default=500)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 8 jobs, a load of 16")
    args = parser.parse_args()
    if args.tiny:
        args.jobs, args.load = 8, 16
    from bench._common import mock_process

    with tempfile.TemporaryDirectory() as tmp, mock_process() as mock_url:
        redis = None if args.no_redis else _redis(tmp)
        backends = [("sqlite", lambda n: f"sqlite:///{tmp}/jobs-{n}.db")]
        if redis is not None:
            backends.append(("redis", lambda n: f"redis://127.0.0.1:{redis[1]}/{n % 16}"))
        elif not args.no_redis:
            print("redis-server not found: the Redis rows are skipped")
        try:
            runs = iter(range(1000))
            print(f"overhead: {args.jobs} trivial jobs")
            for workers in (1, 4):
                slides = [f"o{workers}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.jobs)]
                base = run_in_process(mock_url, slides, workers)
                print(f"  in-process runner, {workers} thread(s): {args.jobs / base:8.1f} jobs/s")
                for name, url_of in backends:
                    slides = [f"q{workers}{name}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.jobs)]
                    took = run_queued(url_of(next(runs)), mock_url, slides, workers)
                    added = (took - base) / args.jobs * 1000
                    print(f"  {name:6} queue, {workers} worker(s):  {args.jobs / took:8.1f} jobs/s, "
                          f"+{added:.1f} ms per job vs in-process")
            print(f"load: {args.load} invocations, 4 worker processes")
            for name, url_of in backends:
                for kill in (False, True):
                    slides = [f"l{name}{kill:d}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.load)]
                    took = run_queued(url_of(next(runs)), mock_url, slides, 1, processes=4, kill_halfway=kill)
                    what = "one worker SIGKILLed halfway" if kill else "no crash"
                    print(f"  {name:6} {what:30}: {took:6.1f} s, {args.load / took:6.1f} jobs/s, "
                          "every slide exactly one final result")
        finally:
            if redis is not None:
                redis[0].terminate()
                redis[0].wait(10)


if __name__ == "__main__":
    main()
