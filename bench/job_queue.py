"""The job queue (issue #16): per-job overhead vs the in-process runner, and a load with a crash.

    python bench/job_queue.py [--jobs 200] [--load 500] [--rounds 3] [--no-redis] [--no-load]
    python bench/job_queue.py --tiny                      # a smoke run: a few jobs, seconds
    python bench/job_queue.py --profile /tmp/prof ...     # each worker under cProfile

The mock runs in its own process; the app is served in this one. In the same run:

* **overhead**: ``--jobs`` trivial jobs (no slide reads, one result write) from invocations to
  final results, with the in-process thread-pool runner (the baseline) and with the queue on
  SQLite and on Redis, consumed by ``sectra worker`` with 1 and 4 workers. Reported as jobs/s and
  as the added wall time per job, (queue − in-process) / jobs; bars: SQLite <= 20 ms, Redis <= 10 ms.
  The in-process baseline itself swings by a third between runs on a busy machine, so each of
  ``--rounds`` rounds runs the baseline next to its queued runs, every round's figures are
  printed, and the verdict is the median of the per-round differences.
* **load**: ``--load`` invocations, 4 worker processes, every slide must end with exactly one
  final result; then the same with one worker SIGKILLed halfway (its job is re-run after the lease).

Needs ``redis-server`` on PATH for the Redis rows (``--no-redis`` skips them). Workers are
``sectra worker`` processes; each one's stderr goes to a file in the run's temporary folder, and a
queued run that outlives ``--deadline`` or loses a worker fails with the jobs done so far, which
workers live and the tail of their stderr, instead of waiting.
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
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any, Final  # noqa: E402

import urllib3  # noqa: E402

from sectra_client.app import AnalysisApp, AppServer, PrimitiveBuilder, create_app  # noqa: E402
from sectra_core import schemas as s  # noqa: E402
from sectra_core.app.messages import invocation_request  # noqa: E402
from sectra_transports.app.runners import ExecutorJobRunner, SyncJob  # noqa: E402
from bench._common import child_env  # noqa: E402

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


def _wait_drained(url: str, total: int, timeout: float, workers: Workers) -> None:
    """Until the queue holds no job (every invocation was answered before this is called): a
    worker drops a job's records only after its final result is stored, so this is the queue's
    twin of the in-process runner's ``join()``. One cheap count per poll, where probing the mock
    for results would load the mock and the two cores the workers share while they work.

    Fails loudly, with what is known, when a worker exits on its own or ``timeout`` passes.
    """
    from sectra_transports.app.queue import HueyJobRunner

    store = HueyJobRunner(url, name=APP_ID).store

    def left() -> int:
        return len(store.scan("job:"))  # the SDK's own job records (its JobStore), never Huey's layout

    start = time.monotonic()
    while (remaining := left()):
        died = workers.died()
        if died or time.monotonic() - start > timeout:
            why = f"worker(s) {died} exited" if died else f"the jobs did not finish in {timeout:.0f} s"
            raise RuntimeError(
                f"queued run on {url.split('://')[0]} failed: {why}; about {total - remaining} of {total} jobs done "
                f"({remaining} records left), workers alive: {workers.alive()}\n{workers.describe()}"
            )
        time.sleep(0.01)


def _fire(app_url: str, mock_url: str, slides: list[str]) -> None:
    with urllib3.PoolManager(maxsize=8) as pool, ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda slide: _invoke(pool, app_url, mock_url, slide), slides))


def _worker_env(url: str, mock_url: str) -> dict[str, str]:
    """The workers' environment (see :func:`bench._common.child_env`: the repository goes in front
    of PYTHONPATH; replacing it made every worker die at import on the device machine, where the
    packages come from ``pip install --target``, and the run wait for jobs no one would take)."""
    return child_env(SECTRA_QUEUE=url, SECTRA_TRUSTED_CALLBACKS=mock_url)


class Workers:
    """``sectra worker`` processes of one queued run, each with its stderr in a file of ``folder``
    (shown on failure); started ready (their "ready" health line read) or failing loudly."""

    def __init__(self, url: str, mock_url: str, n: int, processes: int, folder: Path,
                 profile: tuple[str, Path] | None = None, start_timeout: float = 60.0) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.killed: set[int] = set()
        env = _worker_env(url, mock_url)
        run = next(_RUN_IDS)
        for i in range(processes):
            log = folder / f"worker-{run}-{i}.stderr"
            prefix = [sys.executable, "-m", "sectra_client"]
            if profile is not None:  # (mode, folder): see PROFILED
                profile[1].mkdir(parents=True, exist_ok=True)
                out = str(profile[1] / f"worker-{run}-{i}.prof")
                prefix = [sys.executable, "-m", "bench.job_queue", PROFILED, out, profile[0]]
            with open(log, "wb") as err:
                self.procs.append(subprocess.Popen(
                    [*prefix, "worker", "bench.job_queue:app", "--workers", str(n),
                     "--worker-type", "thread", "--lease", "3", "--health-interval", "3600"],
                    env=env, stdout=subprocess.PIPE, stderr=err, cwd=str(HERE.parent),
                ))
            self.logs.append(log)
        for i, proc in enumerate(self.procs):
            line = _readline(proc, start_timeout)
            if b'"ready"' not in line:
                self.stop()
                raise RuntimeError(f"worker {i} did not start (its first line: {line[:200]!r}); {self.describe()}")

    def alive(self) -> list[bool]:
        """Whether each worker process still runs."""
        return [proc.poll() is None for proc in self.procs]

    def kill(self, index: int) -> None:
        """SIGKILL worker ``index`` (the crash of the load run)."""
        self.killed.add(index)
        self.procs[index].send_signal(signal.SIGKILL)
        self.procs[index].wait()

    def died(self) -> list[int]:
        """Workers that exited without being killed on purpose."""
        return [i for i, proc in enumerate(self.procs) if i not in self.killed and proc.poll() is not None]

    def describe(self, lines: int = 15) -> str:
        """Each worker's state and the tail of its stderr."""
        parts = []
        for i, (proc, log) in enumerate(zip(self.procs, self.logs)):
            rc = proc.poll()
            state = "running" if rc is None else f"exited with status {rc}"
            try:
                tail = log.read_text(errors="replace").splitlines()[-lines:]
            except OSError as exc:
                tail = [f"(stderr unreadable: {exc})"]
            parts.append(f"worker {i} (pid {proc.pid}) {state}; last stderr lines ({log}):\n    "
                         + ("\n    ".join(tail) if tail else "(none)"))
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL for any still running after 30 s."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


_RUN_IDS = iter(range(1_000_000))


def _readline(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The next stdout line of ``proc``, or b"" if it exits or says nothing for ``timeout`` s."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            return b""
    return proc.stdout.readline()


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


def run_queued(url: str, mock_url: str, slides: list[str], workers: int, *, folder: Path, processes: int = 1,
               kill_halfway: bool = False, deadline: float = 600.0,
               profile: tuple[str, Path] | None = None) -> float:
    """Seconds from the first invocation to every slide's final result, through the queue."""
    import bench.job_queue as importable  # run as a script this is __main__, which a worker cannot import

    procs = Workers(url, mock_url, workers, processes, folder, profile)
    try:
        with AppServer(create_app(importable.make_app(queue=url), trusted_callbacks=[mock_url])).run() as base:
            start = time.perf_counter()
            if kill_halfway:
                half = len(slides) // 2
                _fire(f"{base}/", mock_url, slides[:half])
                procs.kill(0)  # mid-load, most likely mid-job
                _fire(f"{base}/", mock_url, slides[half:])
            else:
                _fire(f"{base}/", mock_url, slides)
            _wait_drained(url, len(slides), deadline, procs)
            elapsed = time.perf_counter() - start
            _wait_done(mock_url, slides, timeout=60)  # not timed: checking is not the queue's work
        texts = _final_texts(mock_url, slides)
        bad = [slide for slide, t in zip(slides, texts) if t != ["done"]]
        if bad:
            raise RuntimeError(f"{len(bad)} slides without exactly one final result, e.g. {bad[0]}: "
                               f"{texts[slides.index(bad[0])]}\n{procs.describe()}")
        return elapsed
    finally:
        procs.stop()


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
    parser.add_argument("--rounds", type=int, default=None,
                        help="overhead rounds, each an in-process run next to its queued runs; the verdict is the "
                             "median of the per-round differences (default 3; 1 with --tiny)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds a queued run may take before it fails with what is known "
                             "(default: 60 + 0.5 s per job)")
    parser.add_argument("--stages", type=Path, default=None, metavar="DIR",
                        help="stamp each job's stages in the workers (Huey's task; pickup, job, drop), medians to "
                             "DIR/worker-<run>-<i>.prof.txt (runs numbered as started)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="as --stages, and each worker's jobs under cProfile, to DIR/worker-<run>-<i>.prof")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--no-load", action="store_true", help="only the overhead rows")
    parser.add_argument("--tiny", action="store_true", help="a smoke run: 8 jobs, a load of 16, one round")
    args = parser.parse_args()
    if args.tiny:
        args.jobs, args.load = 8, 16
    rounds = args.rounds or (1 if args.tiny else 3)
    profile = ("profile", args.profile) if args.profile else ("stages", args.stages) if args.stages else None
    if rounds < 1 or args.jobs < 1:
        parser.error("--rounds and --jobs must be at least 1")
    def deadline(jobs: int) -> float:
        return args.deadline if args.deadline is not None else 60.0 + 0.5 * jobs
    from bench._common import mock_process

    # The app (this process) and its workers sign the queue's messages with one secret (Redis needs it).
    os.environ.setdefault("SECTRA_QUEUE_SECRET", uuid.uuid4().hex + uuid.uuid4().hex)
    with tempfile.TemporaryDirectory() as tmp, mock_process() as mock_url:
        folder = Path(tmp)
        redis = None if args.no_redis else _redis(tmp)
        backends = [("sqlite", lambda n: f"sqlite:///{tmp}/jobs-{n}.db")]
        if redis is not None:
            backends.append(("redis", lambda n: f"redis://127.0.0.1:{redis[1]}/{n % 16}"))
        elif not args.no_redis:
            print("redis-server not found: the Redis rows are skipped")
        bars = {"sqlite": 20.0, "redis": 10.0}
        try:
            runs = iter(range(1000))
            print(f"overhead: {args.jobs} trivial jobs, {rounds} round(s) of in-process then queued runs", flush=True)
            for workers in (1, 4):
                added: dict[str, list[float]] = {name: [] for name, _ in backends}
                rates: dict[str, list[float]] = {name: [] for name, _ in [("in-process", None), *backends]}
                for r in range(1, rounds + 1):
                    slides = [f"o{workers}{r}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.jobs)]
                    base = run_in_process(mock_url, slides, workers)
                    rates["in-process"].append(args.jobs / base)
                    row = [f"in-process {args.jobs / base:6.1f} jobs/s"]
                    for name, url_of in backends:
                        slides = [f"q{workers}{r}{name}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.jobs)]
                        took = run_queued(url_of(next(runs)), mock_url, slides, workers, folder=folder,
                                          deadline=deadline(args.jobs), profile=profile)
                        added[name].append((took - base) / args.jobs * 1000)
                        rates[name].append(args.jobs / took)
                        row.append(f"{name} {args.jobs / took:6.1f} jobs/s ({added[name][-1]:+.1f} ms/job)")
                    print(f"  {workers} worker(s), round {r}: " + ", ".join(row), flush=True)
                print(f"  {workers} worker(s), medians: in-process runner {statistics.median(rates['in-process']):.1f} jobs/s",
                      flush=True)
                for name, _ in backends:
                    median = statistics.median(added[name])
                    verdict = "met" if median <= bars[name] else "NOT met"
                    print(f"    {name:6} queue: {statistics.median(rates[name]):8.1f} jobs/s, {median:+.1f} ms per job vs "
                          f"in-process (median of the rounds' differences; bar <= {bars[name]:.0f} ms: {verdict})",
                          flush=True)
            if args.no_load:
                return
            print(f"load: {args.load} invocations, 4 worker processes", flush=True)
            for name, url_of in backends:
                for kill in (False, True):
                    slides = [f"l{name}{kill:d}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.load)]
                    took = run_queued(url_of(next(runs)), mock_url, slides, 1, folder=folder, processes=4,
                                      kill_halfway=kill, deadline=deadline(args.load), profile=profile)
                    what = "one worker SIGKILLed halfway" if kill else "no crash"
                    print(f"  {name:6} {what:30}: {took:6.1f} s, {args.load / took:6.1f} jobs/s, "
                          "every slide exactly one final result", flush=True)
        finally:
            if redis is not None:
                redis[0].terminate()
                redis[0].wait(10)


#: ``python -m bench.job_queue --profiled-worker OUT MODE worker ...``: ``sectra worker`` with
#: per-stage stamps of every job (MODE "stages"), or those and every job Huey executes under
#: cProfile (MODE "profile": in the worker threads, which ``-m cProfile`` would not see), written
#: at exit: the stamps to OUT.txt, the merged profile to OUT.
PROFILED: Final = "--profiled-worker"
#: The stages stamped: Huey's whole task, and inside it the SDK's pickup, the job itself, the drop.
STAGES: Final = ("execute", "pickup", "job", "forget")


def profiled_worker(out: str, mode: str, argv: list[str]) -> int:
    """Run ``sectra worker`` with per-stage stamps, and Huey's per-task ``execute`` under cProfile
    with ``mode`` "profile" (see PROFILED)."""
    import atexit
    import cProfile
    import pstats
    import threading

    import huey
    from sectra_client.cli import main as cli_main
    from sectra_transports.app.queue import worker as worker_module
    from sectra_transports.app.queue.runner import HueyJobRunner

    profiles: list[cProfile.Profile] = []
    local = threading.local()
    lock = threading.Lock()
    stamps: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def stamped(stage: str, func: Any, profiled: bool = False) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            prof = getattr(local, "prof", None) if profiled and mode == "profile" else None
            if profiled and mode == "profile" and prof is None:
                prof = local.prof = cProfile.Profile()
                with lock:
                    profiles.append(prof)
            start = time.perf_counter()
            if prof is not None:
                prof.enable()
            try:
                return func(*args, **kwargs)
            finally:
                if prof is not None:
                    prof.disable()
                took = time.perf_counter() - start
                with lock:
                    stamps[stage].append(took)
        return wrapper

    huey.Huey.execute = stamped("execute", huey.Huey.execute, profiled=True)  # type: ignore[method-assign]
    HueyJobRunner.pickup = stamped("pickup", HueyJobRunner.pickup)  # type: ignore[method-assign]
    HueyJobRunner.forget = stamped("forget", HueyJobRunner.forget)  # type: ignore[method-assign]
    worker_module.run_sync_job = stamped("job", worker_module.run_sync_job)  # type: ignore[attr-defined]

    def dump() -> None:
        with lock:
            lines = [f"{stage:8} n={len(v):5}  median {statistics.median(v) * 1000:7.3f} ms  "
                     f"mean {statistics.fmean(v) * 1000:7.3f} ms" for stage, v in stamps.items() if v]
            Path(out + ".txt").write_text("\n".join(lines) + "\n")
            if profiles:
                stats = pstats.Stats(profiles[0])
                for prof in profiles[1:]:
                    stats.add(prof)
                stats.dump_stats(out)

    atexit.register(dump)
    return cli_main(argv)


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == PROFILED:
        sys.exit(profiled_worker(sys.argv[2], sys.argv[3], sys.argv[4:]))
    main()
