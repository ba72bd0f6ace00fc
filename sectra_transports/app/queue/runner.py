"""The app's side of the job queue: :class:`HueyJobRunner` enqueues jobs, refuses duplicates and
cancels; ``sectra worker`` (:mod:`.worker`) runs them.

What a job is in the queue: its :class:`~sectra_core.app.jobs.JobSpec` (pickled; it carries the
callback token, never the app's password), the dotted name of its work function (the worker
imports it: work must be a module-level function) and a *record* in the queue's storage:

==================== ==============================================================================
``job:<id>``         queued or running, the worker and its last heartbeat (a lease: a worker that
                     stops beating for ``lease`` seconds is presumed dead and the job is queued again)
``token:<token>``    the job started for an invocation's ``cancellationToken``
``cancel:<id>``      cancel requested: a queued job never runs (its result reads "Analysis
                     cancelled"), a running one stops at its next ``progress()``
``claim:<key>``      the job that owns (application, slide, work): a duplicate invocation gets that
                     job's result instead of a second job
==================== ==============================================================================

The Huey task carries the job's record as it was queued, so the worker picks a job up in one
round trip (:meth:`QueueBackend.pickup`: read the record and its cancel flag, mark it running if
it is still the record the task carried); dropping a finished job's records, its claim included
while it is still that job's, is one more (:meth:`QueueBackend.drop`).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pickle
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from sectra_core.errors import ConfigurationError
from sectra_core.app.jobs import JobSpec

from .backend import DEFAULT_QUEUE, QueueBackend

__all__ = ["HueyJobRunner", "JobRecord", "on_queue", "runner_for", "work_ref", "resolve_work", "LEASE", "TASK_NAME"]

log = logging.getLogger("sectra_transports.app.queue")

#: Seconds without a heartbeat after which a running job is presumed lost and queued again.
LEASE: Final = 30.0
#: Seconds a duplicate invocation waits for the first one to finish storing its placeholder.
CLAIM_WAIT: Final = 30.0
#: Seconds after which a claim is dropped even if its job looks alive (a job lost with its records).
CLAIM_TTL: Final = 24 * 3600.0
#: The one Huey task every job runs through (registered on each queue's Huey).
TASK_NAME: Final = "sectra_job"

W = TypeVar("W", bound=Callable[..., Any])


def on_queue(name: str) -> Callable[[W], W]:
    """Route a work function's jobs to the named queue (``sectra worker APP --queue NAME``).

        @on_queue("gpu")
        def segment(job): ...
    """
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigurationError(f"queue name {name!r}: use letters, digits, '-' and '_'")

    def mark(func: W) -> W:
        func.sectra_queue = name  # type: ignore[attr-defined]
        return func

    return mark


def work_ref(work: Any) -> str:
    """``module:qualname`` of a work function, which a worker process can import."""
    module = getattr(work, "__module__", None)
    qualname = getattr(work, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        raise ConfigurationError(
            f"a queued job's work function must be importable by `sectra worker`: define "
            f"{getattr(work, '__name__', work)!r} at module level in a module (not __main__, not a lambda or a nested function)"
        )
    return f"{module}:{qualname}"


def resolve_work(ref: str) -> Any:
    """The function ``ref`` (from :func:`work_ref`) names."""
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class JobRecord:
    """One queued or running job, as kept in the queue's storage."""

    job_id: str
    work: str
    queue: str
    spec: JobSpec = field(repr=False)
    task_id: str = ""
    state: str = "queued"
    since: float = field(default_factory=time.time)
    heartbeat: float = 0.0
    worker: str = ""
    attempt: int = 1
    #: The stored ``claim:`` value this job owns (b"": none); None in records queued before claims
    #: were kept here, whose claim is then read to tell whether it is still theirs.
    claim: bytes | None = field(default=None, repr=False)

    def dump(self) -> bytes:
        """The stored form."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def load(data: Any) -> JobRecord | None:
        """A record from storage (None for nothing or something else)."""
        if not isinstance(data, bytes):
            return None
        value = pickle.loads(data)
        return value if isinstance(value, JobRecord) else None


class HueyJobRunner:
    """Runs background jobs on worker processes through a Huey queue (``sectra worker``).

    ``url``: ``sqlite:///jobs.db`` (one machine, durable, no server) or ``redis://host:6379/0``
    (workers on any number of machines). ``app``: the :class:`~sectra_core.app.declaration.AnalysisApp`
    (its trusted origins and credentials serve the worker; its id names the queue).
    ``dedup``: refuse a second job for the same (application, slide, work function) while one is
    queued or running; the duplicate invocation is answered with the running job's result.
    ``lease``: seconds without a heartbeat before a running job is queued again.

    Work functions must be module-level (the worker imports them by name); route one to a named
    queue with :func:`on_queue`.
    """

    #: The webhook may call this runner from worker threads directly (it does its own locking).
    thread_safe: Final = True

    def __init__(
        self, url: str, app: Any = None, *, name: str | None = None, dedup: bool = True, lease: float = LEASE,
        claim_wait: float = CLAIM_WAIT, claim_ttl: float = CLAIM_TTL,
    ) -> None:
        if name is None:
            if app is None:
                raise ConfigurationError("HueyJobRunner needs app= or name= (the queue's name)")
            name = app.application_id
        if lease <= 0:
            raise ConfigurationError(f"lease must be positive seconds, got {lease}")
        self.app = app
        self.backend = QueueBackend(url, name)
        self.dedup = dedup
        self.lease = float(lease)
        self.claim_wait = claim_wait
        self.claim_ttl = claim_ttl
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: Set by the worker: what runs a dequeued job (see :mod:`.worker`).
        self.executor: Callable[..., None] | None = None

    def __repr__(self) -> str:
        return f"<HueyJobRunner {self.backend.kind} {self.backend.name}>"

    # --- storage -----------------------------------------------------------------------------

    @property
    def storage(self) -> Any:
        """The Huey storage holding the SDK's records."""
        return self.backend.control.storage

    def _peek(self, key: str) -> Any:
        from huey.constants import EmptyData

        value = self.storage.peek_data(key)
        return None if value is EmptyData else value

    def record(self, job_id: str) -> JobRecord | None:
        """The record of a queued or running job; None once it has finished."""
        return JobRecord.load(self._peek(f"job:{job_id}"))

    def save(self, record: JobRecord) -> None:
        """Store ``record``."""
        self.storage.put_data(f"job:{record.job_id}", record.dump())

    def records(self) -> list[JobRecord]:
        """Every queued or running job."""
        found = []
        for key, value in self.storage.result_items().items():
            if str(key).startswith("job:"):
                record = JobRecord.load(value)
                if record is not None:
                    found.append(record)
        return found

    def cancel_requested(self, job_id: str) -> bool:
        """Whether ``cancel`` was asked for the job."""
        return bool(self.storage.has_data_for_key(f"cancel:{job_id}"))

    # --- tasks --------------------------------------------------------------------------------

    def task(self, queue: str) -> Any:
        """The Huey task of ``queue`` (registered once per queue)."""
        with self._lock:
            task = self._tasks.get(queue)
            if task is None:
                huey = self.backend.huey(queue)
                runner = weakref.proxy(self)

                def sectra_job(job_id: str, queued: bytes | None = None) -> None:
                    if runner.executor is None:
                        raise ConfigurationError("this process runs no worker (start one with `sectra worker`)")
                    runner.executor(job_id, queued)

                task = self._tasks[queue] = huey.task(name=TASK_NAME)(sectra_job)
        return task

    def enqueue(self, record: JobRecord, also: dict[str, bytes] | None = None) -> None:
        """Save ``record`` (and the records ``also``) and put its job on its queue, atomically,
        in one round trip: a crash in between cannot leave a "queued" record with no task."""
        record.task_id = str(uuid.uuid4())
        data = record.dump()
        # The task carries the record as stored, for the worker's one-round-trip pickup.
        task = self.task(record.queue).s(record.job_id, data, id=record.task_id)
        self.backend.write({**(also or {}), f"job:{record.job_id}": data}, enqueue=(record.queue, task))

    def pickup(self, job_id: str, queued: bytes | None, worker: str) -> tuple[JobRecord | None, bool]:
        """A dequeued job's record, marked running by ``worker``, and whether cancel was asked for
        it; None if the job has finished (a duplicate delivery). One round trip when the record is
        still the one the task carried (``queued``); a cancelled job is not marked running."""
        now = time.time()
        carried = JobRecord.load(queued) if queued else None
        running = b""
        if carried is not None:
            carried.state, carried.worker, carried.heartbeat = "running", worker, now
            running = carried.dump()
        raw, cancel, swapped = self.backend.pickup(f"job:{job_id}", f"cancel:{job_id}", queued, running)
        if swapped:
            return carried, False
        record = JobRecord.load(raw)
        if record is not None and cancel is None:
            # A task from an older app, or a record changed since it was queued: the slow way.
            record.state, record.worker, record.heartbeat = "running", worker, now
            self.save(record)
        return record, cancel is not None

    # --- duplicates ---------------------------------------------------------------------------

    def _claim_key(self, application_id: str, slide_id: str, ref: str) -> str:
        return f"claim:{application_id}|{slide_id}|{ref}"

    def claim(self, application_id: str, slide_id: str, work: Any) -> int | str | None:
        """Before a job's placeholder is stored: None if this invocation may start the job, else
        the id of the result owned by the job already queued or running for the same (application,
        slide, work). Waits (up to ``claim_wait``) while that job's placeholder is being stored."""
        if not self.dedup:
            return None
        key = self._claim_key(application_id, slide_id, work_ref(work))
        deadline = time.monotonic() + self.claim_wait
        while True:
            if self.storage.put_if_empty(key, pickle.dumps((None, None, time.time()))):
                return None
            raw = self._peek(key)
            if raw is None:
                continue  # released between our two reads: try again
            job_id, result_id, since = pickle.loads(raw)
            alive = job_id is None or self.record(job_id) is not None
            if alive and time.time() - since < self.claim_ttl:
                if result_id is not None:
                    log.info("a job for this slide is already queued or running: answered with result %s", result_id)
                    return result_id
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
            # The owner finished, died before storing its placeholder, or is too old: take over.
            if self._peek(key) == raw:
                self.storage.delete_data(key)

    # --- the JobRunner protocol ---------------------------------------------------------------

    def submit(self, spec: JobSpec, work: Any) -> None:
        """Queue ``work`` for ``spec``; a worker runs it. Returns once the job is stored."""
        ref = work_ref(work)
        options = {k: v for k, v in spec.client_options.items() if k != "credentials"}
        # The app's password stays out of the queue: workers use their own (docs/app-guide.md §9).
        record = JobRecord(
            job_id=uuid.uuid4().hex, work=ref, queue=getattr(work, "sectra_queue", DEFAULT_QUEUE),
            spec=replace(spec, client_options=options),
        )
        also: dict[str, bytes] = {}
        if spec.cancellation_token:
            also[f"token:{spec.cancellation_token}"] = record.job_id.encode()
        record.claim = b""
        if self.dedup:
            key = self._claim_key(spec.application_id, spec.slide_id, ref)
            also[key] = record.claim = pickle.dumps((record.job_id, spec.result_id, time.time()))
        self.enqueue(record, also)
        log.info("queued job %s for result %s on queue %s", record.job_id, spec.result_id, record.queue)

    def cancel(self, cancellation_token: str) -> bool:
        """Cancel the job started for ``cancellation_token``: a queued one never runs (the worker
        that picks it up reads the flag in the same round trip and writes "Analysis cancelled"),
        a running one stops at its next ``progress()``."""
        raw = self._peek(f"token:{cancellation_token}")
        if raw is None:
            return False
        job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        record = self.record(job_id)
        if record is None:
            return False
        self.storage.put_data(f"cancel:{job_id}", b"1")
        log.info("cancel requested for job %s (%s)", job_id, record.state)
        return True

    def forget(self, record: JobRecord) -> None:
        """Drop every record of a finished job, its claim only while it is still this job's (a
        newer job may own the slide by now): one round trip."""
        keys = [f"job:{record.job_id}", f"cancel:{record.job_id}"]
        if record.spec.cancellation_token:
            keys.append(f"token:{record.spec.cancellation_token}")
        keys += [f"reap:{record.job_id}:{attempt}" for attempt in range(1, record.attempt + 1)]  # see Worker.reap
        key = self._claim_key(record.spec.application_id, record.spec.slide_id, record.work)
        if record.claim is not None:
            self.backend.drop(keys, {key: record.claim} if record.claim else {})
            return
        raw = self._peek(key)  # a record from before claims were kept in it: read the claim
        if raw is not None and pickle.loads(raw)[0] == record.job_id:  # ours, not a newer job's
            keys.append(key)
        self.backend.write(delete=keys)

    def counts(self) -> dict[str, int]:
        """Jobs queued and running (from the records), for health output."""
        states = [r.state for r in self.records()]
        return {"queued": states.count("queued"), "running": states.count("running")}


_RUNNERS: weakref.WeakKeyDictionary[Any, HueyJobRunner] = weakref.WeakKeyDictionary()
_RUNNERS_LOCK = threading.Lock()


def runner_for(app: Any) -> HueyJobRunner:
    """The app's queue runner (one per app and process), from ``app.queue``."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(app)
        if runner is None:
            if not getattr(app, "queue", None):
                raise ConfigurationError(
                    f"the app {app.application_id!r} has no queue: AnalysisApp(queue='sqlite:///jobs.db') or SECTRA_QUEUE"
                )
            runner = _RUNNERS[app] = HueyJobRunner(app.queue, app)
        return runner


def is_async_work(work: Any) -> bool:
    """Whether ``work`` is ``async def``."""
    return inspect.iscoroutinefunction(work)
