"""The app's side of the job queue: :class:`HueyJobRunner` enqueues jobs, refuses duplicates and
cancels; ``sectra worker`` (:mod:`.worker`) runs them.

What a job is in the queue: a Huey task whose signed message carries the job's id and its
:class:`JobRecord` as JSON (the work function's ``module:qualname`` and the
:class:`~sectra_core.app.jobs.JobSpec`, which carries the callback token, never the app's
password), and the SDK's own *records* in the queue's :class:`~.store.JobStore`, each msgspec
JSON sealed with the queue's HMAC (:mod:`.signing`): nothing read from the store is executed, and
a record that is not the SDK's own is logged once and skipped.

==================== ==============================================================================
``job:<id>``         queued or running, the worker and its last heartbeat (a lease: a worker that
                     stops beating for ``lease`` seconds is presumed dead and the job is queued again)
``token:<token>``    the job started for an invocation's ``cancellationToken``
``cancel:<id>``      cancel requested: a queued job never runs (its result reads "Analysis
                     cancelled"), a running one stops at its next ``progress()``
``claim:<key>``      the job that owns (application, slide, work): a duplicate invocation gets that
                     job's result instead of a second job
``reap:<id>:<n>``    the worker that queued attempt ``n`` of a lost job again (one per attempt)
``app``              where the app found the queue (a SQLite file's absolute path), for workers to compare
``worker:<identity>`` a running worker and when it last said so, for the app to tell "no worker here"
==================== ==============================================================================

A worker picks a job up in two round trips (read the record and its cancel flag; mark it running
if it still is the record the task carried) and drops a finished job's records in one more.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Collection
from typing import Any, Final, TypeVar

import msgspec

from sectra_core.errors import ConfigurationError
from sectra_core.app.jobs import JobSpec, StoredJobRunner, encode_job_spec

from .backend import DEFAULT_QUEUE, QueueBackend, store_errors
from .signing import RefusedMessage

__all__ = [
    "HueyJobRunner", "JobRecord", "AppSeen", "on_queue", "runner_for", "work_ref", "resolve_work", "LEASE", "TASK_NAME",
]

log = logging.getLogger("sectra_transports.app.queue")

#: Seconds without a heartbeat after which a running job is presumed lost and queued again.
LEASE: Final = 30.0
#: Seconds a duplicate invocation waits for the first one to finish storing its placeholder.
CLAIM_WAIT: Final = 30.0
#: Seconds after which a claim is dropped even if its job looks alive (a job lost with its records).
CLAIM_TTL: Final = 24 * 3600.0
#: The one Huey task every job runs through (registered on each queue's Huey).
TASK_NAME: Final = "sectra_job"
#: Seconds between a worker's presence records; one older than twice this is a worker gone.
PRESENCE_EVERY: Final = 10.0

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


def resolve_work(ref: str, allowed: Collection[str] | None = None) -> Any:
    """The function ``ref`` (from :func:`work_ref`) names; ConfigurationError unless it is a
    Python function defined under exactly that name, in a module whose top-level package is in
    ``allowed`` (None: any). A signed record is trusted data, yet it must not name ``os:system``:
    a worker passes the packages of its app's handlers, and imports nothing outside them."""
    module, _, qualname = ref.partition(":")
    refused = ConfigurationError(
        f"the job names {ref!r}, which is not a work function of this app (a module-level function in "
        f"the package of the app's handlers{'' if allowed is None else ': ' + ', '.join(sorted(allowed))})"
    )
    if not module or not qualname or (allowed is not None and module.partition(".")[0] not in allowed):
        raise refused
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not inspect.isfunction(obj) or obj.__module__ != module or obj.__qualname__ != qualname:
        raise refused  # a class, a builtin, or a function re-exported from elsewhere
    return obj


class JobRecord(msgspec.Struct, kw_only=True):
    """One queued or running job, as kept in the queue's store (msgspec data)."""

    job_id: str
    work: str
    queue: str
    spec: JobSpec
    task_id: str = ""
    state: str = "queued"
    since: float = msgspec.field(default_factory=time.time)
    heartbeat: float = 0.0
    worker: str = ""
    attempt: int = 1
    #: The ``claim:`` payload this job owns ("" none): its claim is dropped only while it is still this.
    claim: str = ""

    def __repr__(self) -> str:
        return f"JobRecord(job_id={self.job_id!r}, work={self.work!r}, queue={self.queue!r}, state={self.state!r})"

    def dump(self) -> bytes:
        """The stored form: JSON."""
        return _RECORD_ENCODER.encode(self)

    @staticmethod
    def load(data: bytes) -> JobRecord:
        """A record from :meth:`dump`; msgspec.DecodeError for anything else."""
        return _RECORD_DECODER.decode(data)


class Claim(msgspec.Struct, array_like=True):
    """Who owns (application, slide, work): the job (None while its placeholder is being stored)."""

    job_id: str | None
    result_id: int | str | None
    since: float


class AppSeen(msgspec.Struct):
    """Where an app found its queue, for workers to compare with theirs."""

    location: str
    host: str
    pid: int
    since: float


_RECORD_ENCODER = msgspec.json.Encoder()
_RECORD_DECODER = msgspec.json.Decoder(JobRecord)
_CLAIM_DECODER = msgspec.json.Decoder(Claim)
_APP_DECODER = msgspec.json.Decoder(AppSeen)


class HueyJobRunner(StoredJobRunner):
    """Runs background jobs on worker processes through a Huey queue (``sectra worker``).

    ``url``: ``sqlite:///jobs.db`` (one machine, durable, no server) or ``redis://host:6379/0``
    (workers on any number of machines; needs ``SECTRA_QUEUE_SECRET``). ``app``: the
    :class:`~sectra_core.app.declaration.AnalysisApp` (its trusted origins and credentials serve
    the worker; its id names the queue). ``dedup``: refuse a second job for the same
    (application, slide, work function) while one is queued or running; the duplicate invocation
    is answered with the running job's result. ``lease``: seconds without a heartbeat before a
    running job is queued again.

    Every method may wait on the store: in an event loop, call them on a thread (the app server
    does). Work functions must be module-level (the worker imports them by name); route one to a
    named queue with :func:`on_queue`.
    """

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
        self.store = self.backend.store
        self.dedup = dedup
        self.lease = float(lease)
        self.claim_wait = claim_wait
        self.claim_ttl = claim_ttl
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._unreadable: set[tuple[str, bytes]] = set()
        self._workers_checked = -float("inf")
        #: Set by the worker: what runs a dequeued job (see :mod:`.worker`).
        self.executor: Callable[..., None] | None = None

    def __repr__(self) -> str:
        return f"<HueyJobRunner {self.backend.kind} {self.backend.name}>"

    def close(self) -> None:
        """Close this process's connections to the queue (it reconnects if used again)."""
        self.backend.close()

    def __enter__(self) -> HueyJobRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- sealed records ----------------------------------------------------------------------

    def seal(self, payload: bytes) -> bytes:
        """``payload`` as stored: with the queue's HMAC in front."""
        return self.backend.serializer.seal(payload)

    def _open(self, key: str, raw: bytes | None, decode: Callable[[bytes], Any]) -> Any:
        """The record ``raw`` stored under ``key`` decoded, or None: missing, or not the SDK's
        own (logged once per value, then skipped: it never stops the rest of the queue)."""
        if raw is None:
            return None
        try:
            return decode(self.backend.serializer.open(raw))
        except (RefusedMessage, msgspec.DecodeError) as exc:
            seen = (key, hashlib.sha256(raw).digest())  # a digest: planted values may be large
            if seen not in self._unreadable:
                if len(self._unreadable) < 10_000:  # bounded: a flood of junk must not fill memory
                    self._unreadable.add(seen)
                log.warning("queue record %r is not the SDK's (%s): skipped, never run; whoever wrote it "
                            "can write to the queue's store", key, str(exc)[:200])
            return None

    def record(self, job_id: str) -> JobRecord | None:
        """The record of a queued or running job; None once it has finished."""
        key = f"job:{job_id}"
        [raw] = self.store.get_many([key])
        return self._open(key, raw, JobRecord.load)

    def save(self, record: JobRecord) -> None:
        """Store ``record``."""
        self.store.write({f"job:{record.job_id}": self.seal(record.dump())})

    def records(self) -> list[JobRecord]:
        """Every queued or running job (records that cannot be read are logged once and skipped)."""
        found = []
        for key, raw in self.store.scan("job:"):
            record = self._open(key, raw, JobRecord.load)
            if record is not None:
                found.append(record)
        return found

    def cancel_requested(self, job_id: str) -> bool:
        """Whether ``cancel`` was asked for the job."""
        [raw] = self.store.get_many([f"cancel:{job_id}"])
        return self.is_cancel_flag(job_id, raw)

    def is_cancel_flag(self, job_id: str, raw: bytes | None) -> bool:
        """Whether ``raw``, read at ``cancel:<job_id>``, is the SDK's own cancel flag (an unsigned
        one is logged once and ignored: writing to the store must not cancel jobs)."""
        return self._open(f"cancel:{job_id}", raw, bytes) is not None

    def announce(self) -> str:
        """Record where this app found the queue (workers compare it with theirs) and log it;
        the location."""
        location = self.backend.location
        seen = AppSeen(location=location, host=socket.gethostname(), pid=os.getpid(), since=time.time())
        relative = " (resolved from a relative sqlite:/// URL against the working folder)" if self.backend.relative else ""
        log.info("job queue of app %r: %s%s", self.backend.name, location, relative)
        try:
            self.store.write({"app": self.seal(msgspec.json.encode(seen))})
        except store_errors() as exc:  # the app still serves; queuing a job will say it fails
            log.error("the queue %s cannot be reached: %s", location, " ".join(str(exc).split()))
        return location

    def say_present(self, identity: str) -> None:
        """Record that the worker ``identity`` consumes this queue (see :meth:`workers_present`),
        and drop the records of workers gone for an hour (killed before they could)."""
        now = time.time()
        seen = AppSeen(location=self.backend.location, host=socket.gethostname(), pid=os.getpid(), since=now)
        self.store.write({f"worker:{identity}": self.seal(msgspec.json.encode(seen))})
        for key, raw in self.store.scan("worker:"):
            other = self._open(key, raw, _APP_DECODER.decode)
            if other is not None and now - other.since > 3600:
                self.store.delete_if({key: raw})

    def say_gone(self, identity: str) -> None:
        """Drop the presence record of ``identity`` (a worker stopping)."""
        self.store.write(delete=[f"worker:{identity}"])

    def workers_present(self, now: float | None = None) -> list[AppSeen]:
        """The workers that recorded their presence in the last two :data:`PRESENCE_EVERY`."""
        now = time.time() if now is None else now
        found = [self._open(key, raw, _APP_DECODER.decode) for key, raw in self.store.scan("worker:")]
        return [w for w in found if w is not None and now - w.since <= 2 * PRESENCE_EVERY]

    def _check_workers(self) -> None:
        # On submit, at most once a minute: an app whose jobs no worker can see says so.
        now = time.monotonic()
        if now - self._workers_checked < 60:
            return
        self._workers_checked = now
        if not self.workers_present():
            log.warning("no `sectra worker` has used the queue %s in the last %.0f s: jobs wait there until one "
                        "runs against this same queue (a worker given a relative sqlite:/// path in another folder "
                        "uses another file)", self.backend.location, 2 * PRESENCE_EVERY)

    def app_seen(self) -> AppSeen | None:
        """Where the app last recorded its queue (see :meth:`announce`); None if no app has yet."""
        [raw] = self.store.get_many(["app"])
        return self._open("app", raw, _APP_DECODER.decode)

    # --- tasks --------------------------------------------------------------------------------

    def task(self, queue: str) -> Any:
        """The Huey task of ``queue`` (registered once per queue)."""
        with self._lock:
            task = self._tasks.get(queue)
            if task is None:
                huey = self.backend.huey(queue)
                runner = weakref.proxy(self)

                def sectra_job(job_id: str, queued: str) -> None:
                    if runner.executor is None:
                        raise ConfigurationError("this process runs no worker (start one with `sectra worker`)")
                    runner.executor(job_id, queued)

                task = self._tasks[queue] = huey.task(name=TASK_NAME)(sectra_job)
        return task

    def enqueue(self, record: JobRecord, also: dict[str, bytes] | None = None) -> None:
        """Store ``record`` (and the sealed records ``also``), then put its job on its queue.

        Two steps: a crash in between leaves a "queued" record with no task, which a worker's
        reaper finds (its task is missing from the queue for a lease) and queues again."""
        record.task_id = str(uuid.uuid4())
        data = record.dump()
        # The task carries the record as stored, for the worker's pickup (a compare-and-set).
        self.store.write({**(also or {}), f"job:{record.job_id}": self.seal(data)})
        self.backend.huey(record.queue).enqueue(self.task(record.queue).s(record.job_id, data.decode(), id=record.task_id))

    def pickup(self, job_id: str, queued: str, worker: str) -> tuple[JobRecord | None, bool]:
        """A dequeued job's record (from the signed task), marked running by ``worker``, and
        whether cancel was asked for it; None if the job has finished or the task is not its
        current delivery (a duplicate, or an attempt queued again since). A cancelled job is not
        marked running."""
        carried = JobRecord.load(queued.encode())
        expected = self.seal(queued.encode())
        raw, cancel = self.store.get_many([f"job:{job_id}", f"cancel:{job_id}"])
        if raw is None:
            return None, False
        if raw != expected:
            current = self._open(f"job:{job_id}", raw, JobRecord.load)
            if current is not None and current.state == "queued" and current.task_id == carried.task_id:
                expected = raw  # saved again while queued (same delivery): take it as stored
            else:
                log.info("job %s: this delivery is not the job's current one: skipped", job_id)
                return None, False
        if self.is_cancel_flag(job_id, cancel):
            return carried, True
        running = msgspec.structs.replace(carried, state="running", worker=worker, heartbeat=time.time())
        if not self.store.replace_if(f"job:{job_id}", expected, self.seal(running.dump())):
            log.info("job %s was taken by another delivery meanwhile: skipped", job_id)
            return None, False
        return running, False

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
            if self.store.put_if_absent(key, self.seal(msgspec.json.encode(Claim(None, None, time.time())))):
                return None
            [raw] = self.store.get_many([key])
            if raw is None:
                continue  # released between our two calls: try again
            claim: Claim | None = self._open(key, raw, _CLAIM_DECODER.decode)
            if claim is not None:
                alive = claim.job_id is None or self.record(claim.job_id) is not None
                if alive and time.time() - claim.since < self.claim_ttl:
                    if claim.result_id is not None:
                        log.info("a job for this slide is already queued or running: answered with result %s",
                                 claim.result_id)
                        return claim.result_id
                    if time.monotonic() < deadline:
                        time.sleep(0.05)
                        continue
            # The owner finished, died before storing its placeholder, is too old, or the claim is
            # not the SDK's: take over (only if it is still what we read).
            self.store.delete_if({key: raw})

    # --- the JobRunner protocol ---------------------------------------------------------------

    def submit(self, spec: JobSpec, work: Any) -> None:
        """Queue ``work`` for ``spec``; a worker runs it. Returns once the job is stored."""
        ref = work_ref(work)
        options = {k: v for k, v in spec.client_options.items() if k != "credentials"}
        # The app's password stays out of the queue: workers use their own (docs/app-guide.md §9).
        spec = msgspec.structs.replace(spec, client_options=options)
        encode_job_spec(spec)  # a clear error for client options that are not plain data
        record = JobRecord(
            job_id=uuid.uuid4().hex, work=ref, queue=getattr(work, "sectra_queue", DEFAULT_QUEUE), spec=spec,
        )
        also: dict[str, bytes] = {}
        if spec.cancellation_token:
            also[f"token:{spec.cancellation_token}"] = self.seal(record.job_id.encode())
        if self.dedup:
            key = self._claim_key(spec.application_id, spec.slide_id, ref)
            payload = msgspec.json.encode(Claim(record.job_id, spec.result_id, time.time()))
            record.claim = payload.decode()
            also[key] = self.seal(payload)
        self.enqueue(record, also)
        log.info("queued job %s for result %s on queue %s", record.job_id, spec.result_id, record.queue)
        self._check_workers()

    def cancel(self, cancellation_token: str) -> bool:
        """Cancel the job started for ``cancellation_token``: a queued one never runs (the worker
        that picks it up reads the flag and writes "Analysis cancelled"), a running one stops at
        its next ``progress()``."""
        key = f"token:{cancellation_token}"
        [raw] = self.store.get_many([key])
        job_id = self._open(key, raw, bytes.decode)
        if job_id is None:
            return False
        record = self.record(job_id)
        if record is None:
            return False
        self.store.write({f"cancel:{job_id}": self.seal(b"1")})
        log.info("cancel requested for job %s (%s)", job_id, record.state)
        return True

    def forget(self, record: JobRecord) -> None:
        """Drop every record of a finished job, its claim only while it is still this job's (a
        newer job may own the slide by now): one round trip."""
        keys = [f"job:{record.job_id}", f"cancel:{record.job_id}"]
        if record.spec.cancellation_token:
            keys.append(f"token:{record.spec.cancellation_token}")
        keys += [f"reap:{record.job_id}:{attempt}" for attempt in range(1, record.attempt + 1)]  # see Worker.reap
        claim_key = self._claim_key(record.spec.application_id, record.spec.slide_id, record.work)
        self.store.delete_if({claim_key: self.seal(record.claim.encode())} if record.claim else {}, keys)

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
                    f"the app {app.application_id!r} has no queue: AnalysisApp(queue='sqlite:////var/lib/myapp/jobs.db') or SECTRA_QUEUE"
                )
            runner = _RUNNERS[app] = HueyJobRunner(app.queue, app)
        return runner


def is_async_work(work: Any) -> bool:
    """Whether ``work`` is ``async def``."""
    return inspect.iscoroutinefunction(work)
