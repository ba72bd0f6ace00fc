"""Review of issue #26 as an attacker: a signed record names only the app's own work functions,
the SQLite secret is never read or chmod-ed through a planted symbolic link, and a Redis password
given in the URL's query never reaches a log or health line."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sectra_core import schemas as s
from sectra_core.app.jobs import JobSpec
from sectra_core.errors import ConfigurationError
from sectra_transports.app.queue.runner import JobRecord, resolve_work, work_ref
from tests.queue.queue_app import analyse, make_app

_HERE = {"tests"}  # the test app's handlers live under the top-level package ``tests``


@pytest.mark.parametrize("ref", [
    "os:system", "subprocess:run", "builtins:exec", "sys:exit", "shutil:rmtree",
    "tests.queue.queue_app:PrimitiveBuilder",  # a class re-exported there, not a work function
    "tests.queue.queue_app:os.system",  # a callable reached through an attribute path
])
def test_a_record_naming_anything_but_an_app_work_function_is_refused(ref: str) -> None:
    with pytest.raises(ConfigurationError, match="work function"):
        resolve_work(ref, allowed=_HERE)


def test_the_app_work_functions_still_resolve() -> None:
    assert resolve_work(work_ref(analyse), allowed=_HERE) is analyse


def test_a_module_outside_the_app_is_not_even_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    imported: list[str] = []
    monkeypatch.setattr(importlib, "import_module", lambda name, *a: imported.append(name))
    with pytest.raises(ConfigurationError, match="work function"):
        resolve_work("antigravity:fly", allowed=_HERE)
    assert imported == []


def test_a_worker_runs_no_function_outside_its_app_from_a_signed_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sectra_transports.app.queue.worker import Worker

    # A module-level function on the worker's path but not the app's: whoever holds the secret
    # (or replays a record of another app on the same store) must not be able to run it.
    marker = tmp_path / "ran"
    (tmp_path / "elsewhere_pkg.py").write_text(
        f"def work(job):\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SECTRA_TRUSTED_CALLBACKS", "http://127.0.0.1:1")
    monkeypatch.setenv("SECTRA_QUEUE_SECRET", "x" * 32)
    worker = Worker(make_app(f"sqlite:///{tmp_path}/j.db"), worker_type="thread")
    callback = s.CallbackInfo(url="http://127.0.0.1:1/SectraPathologyServer/api", token="t")
    for ref in ("elsewhere_pkg:work", "os:system"):
        record = JobRecord(job_id=uuid.uuid4().hex, work=ref, queue="default",
                           spec=JobSpec("queued", "slide", callback, 1, "v1"))
        worker.runner.enqueue(record)
        worker.execute(record.job_id, record.dump().decode())
    assert not marker.exists()
    assert worker.failed == 2 and worker.runner.records() == []


def test_the_secret_file_is_not_read_through_a_symbolic_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sectra_transports.app.queue import HueyJobRunner

    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    known = tmp_path / "known.txt"  # a file whose content an attacker knows (or wants chmod-ed)
    known.write_text("a secret everybody can read, long enough")
    known.chmod(0o644)
    (tmp_path / "jobs.db.secret").symlink_to(known)
    with pytest.raises(ConfigurationError, match="symbolic link|not a regular file"):
        HueyJobRunner(f"sqlite:///{tmp_path}/jobs.db", name="a")
    assert known.stat().st_mode & 0o777 == 0o644  # not chmod-ed through the link


def test_a_redis_password_in_the_url_query_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from sectra_transports.app.queue.backend import QueueBackend

    monkeypatch.setenv("SECTRA_QUEUE_SECRET", "x" * 32)
    for url in ("redis://127.0.0.1:6379/0?password=hunter2hunter2", "redis://u:hunter2hunter2@127.0.0.1:6379/0",
                "unix:///tmp/redis.sock?db=0&password=hunter2hunter2"):
        backend = QueueBackend(url, "a")
        assert "hunter2" not in backend.display_url and "hunter2" not in backend.location
        assert "hunter2" not in repr(backend)
        backend.close()


def test_an_unsigned_cancel_flag_planted_in_the_store_cancels_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    from sectra_transports.app.queue import HueyJobRunner

    monkeypatch.setenv("SECTRA_QUEUE_SECRET", "x" * 32)
    runner = HueyJobRunner(f"sqlite:///{tmp_path}/j.db", name="queued")
    callback = s.CallbackInfo(url="http://127.0.0.1:1/SectraPathologyServer/api", token="t")
    record = JobRecord(job_id=uuid.uuid4().hex, work=work_ref(analyse), queue="default",
                       spec=JobSpec("queued", "slide", callback, 1, "v1"))
    runner.enqueue(record)
    runner.store.write({f"cancel:{record.job_id}": b"1"})  # whoever can write the store, without the secret
    assert not runner.cancel_requested(record.job_id)
    running, cancelled = runner.pickup(record.job_id, record.dump().decode(), "w")
    assert running is not None and running.state == "running" and not cancelled
    assert "not the SDK's" in caplog.text
    runner.store.write({f"cancel:{record.job_id}": runner.seal(b"1")})  # the SDK's own flag still works
    assert runner.cancel_requested(record.job_id)


_ORPHAN = r"""
import os, signal, sys, time
marker = sys.argv[1]
worker = os.fork()
if worker == 0:  # the "sectra worker": its parent death kills its forked job processes
    def kill_my_parent():  # runs in the job process before the SDK's hook: the worker dies there
        parent = os.getppid()
        os.kill(parent, signal.SIGKILL)
        while os.getppid() == parent:
            time.sleep(0.001)
    os.register_at_fork(after_in_child=kill_my_parent)
    from sectra_transports.app.queue.worker import _arm_children
    _arm_children(os.getpid())
    if os.fork() == 0:  # a job process, forked as Huey forks them
        time.sleep(1.0)  # an orphan: still running after its worker died
        open(marker, "w").close()
        os._exit(0)
    time.sleep(60)
os.waitpid(worker, 0)
time.sleep(2.0)
"""


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork hooks (POSIX)")
def test_a_job_process_whose_worker_dies_right_after_the_fork_does_not_run_on(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.queue.conftest import ROOT

    marker = tmp_path / "orphan-ran"
    subprocess.run([sys.executable, "-c", _ORPHAN, str(marker)], cwd=ROOT, timeout=60, check=True)
    assert not marker.exists()
