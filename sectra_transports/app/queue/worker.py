"""``sectra worker APP_REF``: consume an app's job queue with the existing job drivers.

A worker runs each dequeued job with :func:`~sectra_transports.app.runners.run_sync_job` (or, for
``async def`` work, :func:`~sectra_transports.app.runners.run_async_job` under ``trio.run``), exactly as
the in-process runners do: the job's result is updated with progress and replaced by the final
result, keeping its id. Around that the worker adds what a queue needs:

* **A lease.** While a job runs, a heartbeat refreshes its record; every worker's service thread
  queues again a job whose heartbeat is older than the lease (its worker was killed). The re-run
  owns the same result id, so the slide still ends with one final result.
* **Cancellation across processes.** The heartbeat also polls the job's cancel flag and makes
  the job's next ``progress()`` raise :class:`~sectra_core.errors.JobCancelled`.
* **Expired tokens.** A job queued for hours may find its callback token refused (401/403). With
  service credentials (``SECTRA_USERNAME``/``SECTRA_PASSWORD``, for trusted origins only) the
  client logs in with ``/token`` instead; without them the result reads "Analysis failed: access
  expired" where Sectra still accepts the write, and the failure is logged either way.
* **Retention.** ``purge_older_than``: downloaded slide files under ``downloads_dir`` older than
  that are deleted periodically (Sectra asks apps to clean up their WSI copies).
* **Job processes die with their worker.** Each process worker asks Linux for SIGKILL when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``; elsewhere a watchdog thread notices the new parent),
  so a supervisor that SIGKILLs the ``sectra worker`` PID leaves no orphan taking jobs.
* **A store that cannot be reached** (or refuses the password) is one log line naming the URL
  without its password, retried with backoff; after ``give_up_after`` seconds the worker exits
  non-zero (:class:`QueueUnreachable`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TextIO

import msgspec


from sectra_core import schemas as s
from sectra_core.errors import AuthenticationError, ConfigurationError, SectraError, UntrustedOriginError, safe_traceback
from sectra_core.app.declaration import ACTIONS
from sectra_core.app.jobs import JobSpec, status_result, update_flow
from sectra_core.flows import Credentials

from ..calls import run_calls
from .._base import _client_args, _mark_cancelled
from ..runners import run_async_job, run_sync_job
from .backend import store_errors
from .signing import RefusedMessage
from .runner import PRESENCE_EVERY, HueyJobRunner, JobRecord, is_async_work, resolve_work, runner_for

__all__ = [
    "Worker", "load_app", "purge_downloads", "parse_age", "ACCESS_EXPIRED", "DOWNLOADS_DIR_ENV",
    "USERNAME_ENV", "PASSWORD_ENV", "QueueUnreachable", "GIVE_UP_AFTER", "die_with_parent",
]

log = logging.getLogger("sectra_transports.app.queue.worker")

#: The result text of a job whose callback token expired with no service credentials to fall back on.
ACCESS_EXPIRED: Final = "Analysis failed: access expired"
#: Where work functions put downloaded slide files (``sectra worker --downloads-dir``).
DOWNLOADS_DIR_ENV: Final = "SECTRA_DOWNLOADS_DIR"
#: The worker's service account for jobs whose callback token expired (``/token`` login).
USERNAME_ENV: Final = "SECTRA_USERNAME"
PASSWORD_ENV: Final = "SECTRA_PASSWORD"
#: A job queued at least this long (seconds) has its callback token checked before it runs.
CHECK_TOKEN_AFTER: Final = 30.0
#: Seconds between two polls of a running job's cancel flag.
CANCEL_POLL: Final = 0.25
#: Seconds a worker keeps trying to reach its queue's store before it exits (``--give-up-after``).
GIVE_UP_AFTER: Final = 300.0
#: Linux's ``prctl`` option that signals a process when its parent dies.
_PR_SET_PDEATHSIG: Final = 1


class QueueUnreachable(SectraError):
    """The worker could not reach its queue's store (or was refused) for ``--give-up-after`` seconds."""


def die_with_parent(parent: int) -> None:
    """Make this (forked) process die when ``parent`` does: SIGKILL from the kernel on Linux
    (``prctl(PR_SET_PDEATHSIG)``), elsewhere a thread that watches for a new parent."""
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(1)

        threading.Thread(target=watch, name="sectra-parent-watch", daemon=True).start()


_AGE_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``24h`` or ``7d``; ConfigurationError otherwise."""
    raw = text.strip().lower()
    unit = _AGE_UNITS.get(raw[-1:], None)
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise ConfigurationError(f"age {text!r}: write a number with s, m, h or d, e.g. 24h") from None
    if value <= 0:
        raise ConfigurationError(f"age {text!r} must be positive")
    return value


def load_app(ref: str) -> Any:
    """The :class:`~sectra_core.app.declaration.AnalysisApp` named by ``module:attr``."""
    import importlib

    from sectra_core.app.declaration import AnalysisApp

    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"APP_REF {ref!r}: write module:attribute, e.g. myapp:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: the app's module sits next to it
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"APP_REF {ref!r}: cannot import {module_name!r} ({exc})") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"APP_REF {ref!r}: {module_name!r} has no {attr!r}") from None
    if not isinstance(obj, AnalysisApp):
        raise ConfigurationError(f"APP_REF {ref!r} is a {type(obj).__name__}, not an AnalysisApp")
    return obj


def purge_downloads(root: Path, older_than: float, *, now: float | None = None) -> int:
    """Delete files under ``root`` not modified for ``older_than`` seconds, then emptied folders;
    the number of files deleted. Symbolic links are removed, never followed."""
    if not root.is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - older_than
    removed = 0
    emptied: set[Path] = set()  # folders we took files from: their mtime is now, yet they are old
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        here = Path(dirpath)
        for name in filenames:
            path = here / name
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
                    emptied.add(here)
            except FileNotFoundError:
                continue
        for name in dirnames:
            sub = here / name
            try:
                if sub.is_symlink():
                    if sub.lstat().st_mtime < cutoff:
                        sub.unlink()
                elif not any(sub.iterdir()) and (sub in emptied or sub.stat().st_mtime < cutoff):
                    # A fresh empty folder may be a job's download starting: it stays.
                    sub.rmdir()
                    emptied.add(here)
            except OSError:
                continue  # in use again, or removed by another worker
    return removed


class _Lease:
    """One running job as :class:`_Leases` keeps it: its record and whether cancel was asked."""

    def __init__(self, record: JobRecord, on_cancel: Callable[[], None]) -> None:
        self.record, self.on_cancel = record, on_cancel
        self.cancelled = False


class _Leases:
    """Keeps the leases of the jobs running in this process and relays their cancel flags.

    One thread per worker process for all its jobs (started on first use in each process, as
    Huey's process workers are forked): each tick reads every running job's cancel flag in one
    round trip and re-saves the records due a heartbeat. A thread per job cost a start and a
    join on every job.
    """

    def __init__(self, runner: HueyJobRunner) -> None:
        self.runner = runner
        self._jobs: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pid: int | None = None

    @contextmanager
    def hold(self, record: JobRecord, on_cancel: Callable[[], None]) -> Iterator[_Lease]:
        """Keep ``record``'s lease (and watch its cancel flag) while the block runs."""
        lease = _Lease(record, on_cancel)
        with self._lock:
            if self._pid != os.getpid():  # first job in this (possibly forked) process
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="sectra-leases", daemon=True).start()
            self._jobs[record.job_id] = lease
        self._wake.set()
        try:
            yield lease
        finally:
            with self._lock:
                del self._jobs[record.job_id]

    def _run(self) -> None:
        beat_every = self.runner.lease / 3
        while True:
            with self._lock:
                idle = not self._jobs
            if idle:
                self._wake.wait()  # nothing to keep until a job starts
                self._wake.clear()
                continue
            time.sleep(CANCEL_POLL)
            with self._lock:
                leases = list(self._jobs.values())  # the jobs still running after the pause
            if not leases:
                continue
            try:
                flags = self.runner.store.get_many([f"cancel:{lease.record.job_id}" for lease in leases])
                for lease, flag in zip(leases, flags):
                    if flag is not None and not lease.cancelled and self.runner.is_cancel_flag(lease.record.job_id, flag):
                        lease.cancelled = True
                        lease.on_cancel()
                now = time.time()
                with self._lock:
                    # Under the lock, and only for jobs still held: a beat saved after its job
                    # finished would bring its record back, and the reaper would run it again.
                    due = [lease.record for lease in self._jobs.values() if now - lease.record.heartbeat >= beat_every]
                    for record in due:
                        record.heartbeat = now
                    if due:
                        self.runner.store.write({f"job:{r.job_id}": self.runner.seal(r.dump()) for r in due})
            except Exception as exc:  # the queue's storage is briefly unreachable: keep beating
                if not _OUTAGE.report(exc):
                    log.warning("job leases: heartbeat failed: %s", safe_traceback(exc))


class _Outage:
    """One log line per ``every`` seconds while the queue's store cannot be reached, wherever it is
    noticed (a poll, a heartbeat, a health line), instead of a traceback each time."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self.location = "?"
        self._last = -float("inf")
        self._lock = threading.Lock()

    def report(self, exc: BaseException) -> bool:
        """Log ``exc`` (rate limited) if it means the store is unreachable; whether it did."""
        if not isinstance(exc, store_errors()):
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._last < self.every:
                return True
            self._last = now
        log.error("the queue %s cannot be reached: %s; retrying (one line every %.0f s while it lasts)",
                  self.location, " ".join(str(exc).split()) or type(exc).__name__, self.every)
        return True


_OUTAGE = _Outage()
_FORKING_WORKER: list[int] = []
_FORKED_BY: list[int] = [0]


def _before_fork() -> None:
    _FORKED_BY[0] = os.getpid()


def _after_fork_in_child() -> None:
    # Who forked, as the parent saw itself: after the fork, getppid() already names init if the
    # worker died in between, and such a child must exit, not run on as an orphan.
    if _FORKING_WORKER and _FORKED_BY[0] == _FORKING_WORKER[0]:
        die_with_parent(_FORKING_WORKER[0])


def _arm_children(pid: int) -> None:
    """Every process the worker ``pid`` forks from now on (Huey's job processes and its
    scheduler) dies with it: armed in the child right after ``fork()``."""
    if not _FORKING_WORKER:
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _FORKING_WORKER.append(pid)
    _FORKING_WORKER[0] = pid


class _QuietStoreErrors(logging.Filter):
    """On Huey's loggers: a refused message was already logged by the serializer (one warning),
    and a store that stops answering mid-run is :class:`_Outage`'s line, not a traceback per poll."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RefusedMessage):
            return False
        return exc is None or not _OUTAGE.report(exc)


_QUIET = _QuietStoreErrors()
for _name in ("huey", "huey.consumer", "huey.consumer.Worker", "huey.consumer.Scheduler"):
    logging.getLogger(_name).addFilter(_QUIET)


class Worker:
    """Consumes one queue of ``app`` with ``workers`` threads or processes (``sectra worker``).

    ``service_credentials``: (username, password) for jobs whose token expired; default from
    ``SECTRA_USERNAME``/``SECTRA_PASSWORD``, else the app's ``client_options["credentials"]``.
    ``check_token_after``: a job that waited this long in the queue (or runs again) first checks
    its callback token, and falls back to the service credentials if it was refused.
    ``health``: where a JSON health line goes every ``health_interval`` seconds (and at start and
    stop); its counts include the jobs of every worker process. ``give_up_after``: seconds to keep
    trying to reach the queue's store at start before :meth:`run` raises :class:`QueueUnreachable`.
    SIGTERM stops gracefully: running jobs finish, queued ones stay queued.
    """

    def __init__(
        self, app: Any, *, queue: str = "default", workers: int = 1, worker_type: str = "process",
        lease: float | None = None, downloads_dir: Path | str | None = None, purge_older_than: float | None = None,
        health: TextIO | None = None, health_interval: float = 30.0,
        service_credentials: tuple[str, str] | None = None, shutdown_timeout: float | None = None,
        check_token_after: float = CHECK_TOKEN_AFTER, give_up_after: float = GIVE_UP_AFTER,
    ) -> None:
        if workers < 1:
            raise ConfigurationError(f"--workers must be at least 1, got {workers}")
        if worker_type not in ("process", "thread"):
            raise ConfigurationError(f"worker type must be 'process' or 'thread', got {worker_type!r}")
        self.app = app
        self.runner = runner_for(app)
        if lease is not None:
            self.runner.lease = lease
        self.queue = queue
        self.workers = workers
        self.worker_type = worker_type
        folder = downloads_dir or os.environ.get(DOWNLOADS_DIR_ENV)
        self.downloads_dir = Path(folder) if folder else None
        if purge_older_than is not None and self.downloads_dir is None:
            raise ConfigurationError("purging downloads needs a downloads folder: --downloads-dir or SECTRA_DOWNLOADS_DIR")
        if self.downloads_dir is not None:
            # Work functions find the folder here (they run in this process or its children).
            os.environ[DOWNLOADS_DIR_ENV] = str(self.downloads_dir)
        self.purge_older_than = purge_older_than
        self.health = health
        self.health_interval = health_interval
        self.shutdown_timeout = shutdown_timeout
        self.check_token_after = check_token_after
        if give_up_after < 0:
            raise ConfigurationError(f"--give-up-after must be 0 or more seconds, got {give_up_after}")
        self.give_up_after = give_up_after
        self._credentials = service_credentials or self._env_credentials()
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._pid = os.getpid()
        # Counted in shared memory: process workers are forked children, and their jobs count too.
        context = multiprocessing.get_context("fork") if worker_type == "process" else multiprocessing
        self._counts = {name: context.Value("q", 0) for name in ("done", "failed", "requeued")}
        #: Task ids of queued jobs seen missing from their queue, and when first (see reap).
        self._missing: dict[str, float] = {}
        self._last_pending_look = -float("inf")
        self.purged = 0
        self._app_known = False
        self._app_warned = False
        self._stop = threading.Event()
        self._leases = _Leases(self.runner)
        # A job may name only a function of the app's own code (the packages of its handlers).
        handlers = [app.handler(action) for action in ACTIONS]
        self._work_packages = {h.__module__.partition(".")[0] for h in handlers if h is not None and h.__module__}
        self.runner.executor = self.execute
        self.runner.task(queue)  # registers the task before the consumer starts


    def _count(self, name: str) -> None:
        value = self._counts[name]
        with value.get_lock():
            value.value += 1

    @property
    def done(self) -> int:
        """Jobs that ended with their final result, in every worker thread or process."""
        return int(self._counts["done"].value)

    @property
    def failed(self) -> int:
        """Jobs that ended without one (failed, cancelled, access expired)."""
        return int(self._counts["failed"].value)

    @property
    def requeued(self) -> int:
        """Jobs this worker queued again (lost leases, interrupted runs)."""
        return int(self._counts["requeued"].value)

    def __repr__(self) -> str:
        return f"<Worker {self.app.application_id} queue {self.queue} x{self.workers}>"

    @staticmethod
    def _env_credentials() -> tuple[str, str] | None:
        user, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)
        return (user, password) if user and password else None

    # --- one job -------------------------------------------------------------------------------

    def _trusted(self, spec: JobSpec) -> bool:
        try:
            self.app.trusted_callbacks.check(spec.callback.url)
        except UntrustedOriginError:
            return False
        return True

    def _prepared(self, spec: JobSpec) -> JobSpec:
        """``spec`` with the worker's service credentials as a fallback for an expired token."""
        creds = self._credentials
        if creds is None:
            app_creds = self.app.client_options.get("credentials")
            if app_creds is None:
                return spec
            options = {**spec.client_options, "credentials": app_creds}
        else:
            # The client tries the callback token first; on 401/403 it logs in with these (§4.2).
            options = {**spec.client_options, "credentials": Credentials(creds[0], creds[1], spec.application_id)}
        return msgspec.structs.replace(spec, client_options={**self.app.client_options, **options})

    def _write_status(self, spec: JobSpec, text: str) -> bool:
        """Replace the job's result with a status ``text``, without reading the slide first."""
        from ...urllib3 import SectraClient

        status = status_result(spec.slide_id, None, text, app_version=spec.app_version, context=spec.context)
        try:
            with SectraClient(**_client_args(spec)) as client:
                run_calls(update_flow(spec.application_id, spec.result_id, spec.version_id, status), client)
        except SectraError as exc:
            log.error("job for result %s: could not write %r: %s", spec.result_id, text, exc)
            return False
        return True

    @staticmethod
    def _probe(spec: JobSpec) -> None:
        from ...urllib3 import SectraClient

        with SectraClient(**_client_args(spec)) as client:
            client.get_image_metadata(spec.slide_id)

    def _access(self, spec: JobSpec) -> JobSpec | None:
        """The spec to run the job with, or None when access has expired. One request checks the
        callback token; a client that also holds the service credentials logs in with them
        (``/token``, spec §4.2) when the token is refused, its first ``/info`` included."""
        try:
            self._probe(spec)
            return spec
        except AuthenticationError:
            pass
        except SectraError:
            return spec  # not an access problem: the job's own run reports it in its result
        if "credentials" in spec.client_options:
            reason = "the service credentials were refused too"
        else:
            reason = f"no service credentials to fall back on (set {USERNAME_ENV} and {PASSWORD_ENV})"
        log.error("job for result %s: access expired: the callback token was refused and %s", spec.result_id, reason)
        self._write_status(spec, ACCESS_EXPIRED)
        return None

    def execute(self, job_id: str, queued: str) -> None:
        """Run the queued job ``job_id`` (called by the Huey task in a worker thread or process;
        ``queued``: the record the task carried, as JSON)."""
        runner = self.runner
        record, cancelled = runner.pickup(job_id, queued, self.identity)
        if record is None:
            log.info("job %s already finished (a duplicate delivery): skipped", job_id)
            return
        spec = record.spec
        if not self._trusted(spec):
            log.error("job %s: its callback origin is not trusted by this worker's app: dropped", job_id)
            runner.forget(record)
            return
        spec = self._prepared(spec)
        if cancelled:  # cancelled while queued: it never runs
            self._write_status(spec, "Analysis cancelled")
            runner.forget(record)
            return
        ok = False
        try:
            work = resolve_work(record.work, self._work_packages)
            token = spec.cancellation_token or f"sectra-job-{job_id}"
            spec = msgspec.structs.replace(spec, cancellation_token=token)
            with self._leases.hold(record, lambda: _mark_cancelled(token)) as beat:
                # A token is checked (one request) only on a job that waited: a fresh one is live.
                waited = time.time() - record.since >= self.check_token_after or record.attempt > 1
                usable = self._access(spec) if waited else spec
                if usable is not None and is_async_work(work):
                    ok = _run_async(usable, work, lambda: beat.cancelled) is not None
                elif usable is not None:
                    ok = run_sync_job(usable, work) is not None
        except Exception as exc:  # the work could not even start (import error...): say so on the result
            log.error("job %s could not run: %s", job_id, safe_traceback(exc))
            self._write_status(spec, f"Analysis failed ({type(exc).__name__})")
        except BaseException:
            # Interrupted (shutdown timeout, second SIGTERM): queue it again now, not after the lease.
            self._requeue(record)
            raise
        runner.forget(record)
        self._count("done" if ok else "failed")

    def _requeue(self, record: JobRecord) -> None:
        record.state, record.worker, record.heartbeat = "queued", "", 0.0
        record.attempt += 1
        self.runner.enqueue(record)
        self._count("requeued")

    # --- the service thread: leases, retention, health ----------------------------------------

    def reap(self) -> int:
        """Queue again every job whose worker stopped beating for a lease, and every job a worker
        took off the queue and died before starting (SIGKILL between the two); how many."""
        now = time.time()
        lease = self.runner.lease
        records = self.runner.records()
        lost = self._lost_in_pickup(records, now)
        count = 0
        for record in records:
            if record.state == "running" and now - record.heartbeat >= lease:
                why = f"worker {record.worker} stopped beating {now - record.heartbeat:.0f} s ago"
            elif record.task_id in lost:
                why = "its worker took it off the queue and stopped before starting it"
            else:
                continue
            # One reaper per lost attempt, whatever the number of workers (an atomic claim).
            if not self.runner.store.put_if_absent(f"reap:{record.job_id}:{record.attempt}", self.runner.seal(b"1")):
                continue
            log.warning("job %s: %s: queued again", record.job_id, why)
            self._requeue(record)
            count += 1
        return count

    def _lost_in_pickup(self, records: list[JobRecord], now: float) -> set[str]:
        """Task ids of "queued" jobs whose task has been off every queue for a lease or more.

        Huey takes a task off the queue before our pickup marks its job running; a worker killed
        in between leaves a "queued" record that no task will ever run. A live worker marks the
        job running within milliseconds, so a task missing from its queue in two looks a lease
        apart is lost. The queues are read only when such a job exists, at most twice per lease.
        """
        lease = self.runner.lease
        old = [r for r in records if r.state == "queued" and r.task_id and now - r.since >= lease]
        if not old:
            self._missing.clear()
            return set()
        if now - self._last_pending_look < lease / 2:
            return set()
        self._last_pending_look = now
        pending: set[str] = set()
        for queue in {r.queue for r in old}:
            pending.update(str(task.id) for task in self.runner.backend.huey(queue).pending())
        missing = {r.task_id for r in old if r.task_id not in pending}
        self._missing = {task_id: self._missing.get(task_id, now) for task_id in missing}
        return {task_id for task_id, first in self._missing.items() if now - first >= lease}

    def health_report(self, state: str) -> dict[str, Any]:
        """What the health line says (``"store": "unreachable"`` and no counts while it is)."""
        store = "ok"
        try:
            counts: dict[str, int | None] = {**self.runner.counts()}
        except store_errors() as exc:
            _OUTAGE.report(exc)
            counts, store = {"queued": None, "running": None}, "unreachable"
        return {
            "worker": self.identity, "state": state, "app": self.app.application_id, "queue": self.queue,
            "backend": self.runner.backend.display_url, "location": self.runner.backend.location, "workers": self.workers, "queued": counts["queued"],
            "running": counts["running"], "done": self.done, "failed": self.failed, "requeued": self.requeued,
            "purged_files": self.purged, "store": store, "time": round(time.time(), 3),
        }

    def _say(self, state: str) -> None:
        if self.health is None:
            return
        try:
            self.health.write(json.dumps(self.health_report(state)) + "\n")
            self.health.flush()
        except Exception as exc:
            if not _OUTAGE.report(exc):
                log.warning("health output failed: %s", safe_traceback(exc))

    def _service(self) -> None:
        tick = min(self.runner.lease / 3, 1.0)
        due = {"presence": time.monotonic(), "purge": -float("inf"), "health": time.monotonic()}
        purge_every = min(self.purge_older_than / 4, 60.0) if self.purge_older_than else None

        def presence() -> None:
            self.runner.say_present(self.identity)
            if not self._app_known:
                self._compare_locations()  # an app may have opened this file since the worker started

        def purge() -> None:
            if self.downloads_dir is not None and self.purge_older_than is not None:
                gone = purge_downloads(self.downloads_dir, self.purge_older_than)
                if gone:
                    log.info("removed %d downloaded file(s) older than %.0f s", gone, self.purge_older_than)
                    self.purged += gone

        steps: list[tuple[str | None, float, Callable[[], object]]] = [
            (None, 0.0, self.reap), ("presence", PRESENCE_EVERY, presence),
            *([("purge", purge_every, purge)] if purge_every is not None else []),
            ("health", self.health_interval, lambda: self._say("running")),
        ]
        while not self._stop.wait(tick):
            for name, every, step in steps:  # each on its own: a store outage stops none of the others
                if name is not None:
                    if time.monotonic() - due[name] < every:
                        continue
                    due[name] = time.monotonic()
                try:
                    step()
                except Exception as exc:
                    if not _OUTAGE.report(exc):
                        log.warning("worker service loop: %s", safe_traceback(exc))

    def connect(self) -> None:
        """Reach the queue's store, retrying with backoff (one log line per try, the URL without
        its password); :class:`QueueUnreachable` after ``give_up_after`` seconds. Then compare
        where the app found its queue with where this worker did."""
        backend = self.runner.backend
        deadline = time.monotonic() + self.give_up_after
        delay = 0.5
        while True:
            try:
                backend.check()
                break
            except store_errors() as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueueUnreachable(
                        f"the queue {backend.location} could not be reached for {self.give_up_after:g} s "
                        f"(--give-up-after): {reason}"
                    ) from None
                delay = min(delay, left)
                log.error("the queue %s cannot be reached: %s; trying again in %.1f s (giving up in %.0f s)",
                          backend.location, reason, delay, left)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        if backend.relative:
            log.warning("the queue URL %s is relative: this worker uses %s (resolved against its working folder); "
                        "the app must use the same file: give both sqlite:////absolute/path.db", backend.url, backend.location)
        self._compare_locations()
        self.runner.say_present(self.identity)

    def _compare_locations(self) -> None:
        backend = self.runner.backend
        if backend.path is None:
            self._app_known = True
            return  # Redis: one server may have several names; nothing to compare
        seen = self.runner.app_seen()
        self._app_known = seen is not None
        if seen is None:
            if not self._app_warned:
                self._app_warned = True
                log.warning("no app has opened the queue %s yet: if your app is running, it uses another file "
                            "(compare its startup log); jobs it queues there never reach this worker", backend.location)
        elif seen.location != backend.location:
            log.warning("the app uses the queue %s (on %s) but this worker uses %s: they are different files, "
                        "so its jobs never reach this worker; give both the same absolute path",
                        seen.location, seen.host, backend.location)

    def run(self) -> None:
        """Reach the store (:meth:`connect`), then consume until SIGTERM (graceful: running jobs
        finish) or SIGINT."""
        self.connect()
        _OUTAGE.location = self.runner.backend.location
        if self.worker_type == "process":
            _arm_children(os.getpid())  # Huey's job and scheduler processes die with this one
        # Redis waits for work in BRPOP; SQLite has no blocking pop, so an idle worker polls: first
        # every 5 ms (a job enqueued just after the queue ran dry starts at once), backing off to
        # 4 polls a second (one indexed "select 1 ... limit 1" each).
        consumer = self.runner.backend.huey(self.queue).create_consumer(
            workers=self.workers, worker_type=self.worker_type, periodic=False, graceful_signal="TERM",
            initial_delay=0.005, backoff=1.2, max_delay=0.25, check_worker_health=True, health_check_interval=1,
            shutdown_timeout=self.shutdown_timeout,
        )
        service = threading.Thread(target=self._service, name="sectra-worker-service", daemon=True)
        service.start()
        self._say("ready")
        try:
            consumer.run()
        finally:
            self._stop.set()
            service.join()
            try:
                self.runner.say_gone(self.identity)
            except store_errors() as exc:
                log.warning("could not drop this worker's presence record: %s", exc)
            self._say("stopped")


def _run_async(spec: JobSpec, work: Any, cancelled: Callable[[], bool]) -> s.ResultResponse | None:
    import trio

    async def main() -> s.ResultResponse | None:
        result: list[s.ResultResponse | None] = [None]
        async with trio.open_nursery() as nursery:
            async def watch() -> None:
                while not cancelled():
                    await trio.sleep(CANCEL_POLL)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            result[0] = await run_async_job(spec, work)
            nursery.cancel_scope.cancel()
        return result[0]

    return trio.run(main)
