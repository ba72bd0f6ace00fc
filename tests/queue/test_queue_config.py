"""The queue's configuration and its mistakes: file modes, work references, usage errors through
the real ``sectra worker`` entry point, duplicate claims switched off, retention by age."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sectra_core.app.declaration import AnalysisApp
from sectra_core.errors import ConfigurationError
from sectra_core.app.jobs import JobSpec
from sectra_core import schemas as s
from sectra_transports.app.queue import HueyJobRunner, on_queue, parse_age, purge_downloads
from sectra_transports.app.queue.runner import resolve_work, work_ref
from tests.queue.conftest import ROOT
from tests.queue.queue_app import analyse


def test_the_sqlite_file_is_created_0600_and_a_loose_one_tightened(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fresh = tmp_path / "new" / "jobs.db"
    HueyJobRunner(f"sqlite:///{fresh}", name="app")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    loose = tmp_path / "loose.db"
    loose.touch(mode=0o644)
    os.chmod(loose, 0o644)
    HueyJobRunner(f"sqlite:///{loose}", name="app")
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    assert "readable by others" in caplog.text


def test_no_permission_change_follows_a_symlink(tmp_path: Path) -> None:
    """A link planted where the queue's file goes is refused: its target keeps its mode and its bytes."""
    target = tmp_path / "someone-elses.txt"
    target.write_bytes(b"not a queue")
    os.chmod(target, 0o644)
    link = tmp_path / "jobs.db"
    link.symlink_to(target)
    with pytest.raises(ConfigurationError, match="symbolic link"):
        HueyJobRunner(f"sqlite:///{link}", name="app")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes() == b"not a queue"
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere" / "x.db")
    with pytest.raises(ConfigurationError, match="symbolic link"):
        HueyJobRunner(f"sqlite:///{dangling}", name="app")
    assert not (tmp_path / "nowhere").exists()


def test_bad_queue_urls_and_settings_say_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="sqlite:// .* or redis://"):
        HueyJobRunner("amqp://user:secret@host/", name="app")
    with pytest.raises(ConfigurationError, match="names no file"):
        HueyJobRunner("sqlite:///", name="app")
    with pytest.raises(ConfigurationError, match="app= or name="):
        HueyJobRunner(f"sqlite:///{tmp_path}/j.db")
    with pytest.raises(ConfigurationError, match="queue= or job_runner=, not both"):
        AnalysisApp(application_id="a", display_name="A", manufacturer="M", queue="sqlite:///j.db", job_runner=object())
    with pytest.raises(ConfigurationError, match="letters, digits"):
        on_queue("gpu queue")
    assert [parse_age(t) for t in ("90", "90s", "15m", "24h", "7d")] == [90, 90, 900, 86400, 604800]
    with pytest.raises(ConfigurationError, match="e.g. 24h"):
        parse_age("a day")


def test_the_queue_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECTRA_QUEUE", "redis://127.0.0.1:6379/3")
    assert AnalysisApp(application_id="a", display_name="A", manufacturer="M").queue == "redis://127.0.0.1:6379/3"
    monkeypatch.delenv("SECTRA_QUEUE")
    assert AnalysisApp(application_id="a", display_name="A", manufacturer="M").queue is None


def test_work_must_be_importable_by_the_worker() -> None:
    assert resolve_work(work_ref(analyse)) is analyse
    with pytest.raises(ConfigurationError, match="module level"):
        work_ref(lambda job: None)

    def nested(job: object) -> None: ...

    with pytest.raises(ConfigurationError, match="module level"):
        work_ref(nested)


def _spec(slide: str, result_id: int, token: str) -> JobSpec:
    callback = s.CallbackInfo(url="http://127.0.0.1:1/SectraPathologyServer/api", token="t")
    return JobSpec("app", slide, callback, result_id, "v1", cancellation_token=token)


def test_duplicate_claims_and_switching_them_off(tmp_path: Path) -> None:
    runner = HueyJobRunner(f"sqlite:///{tmp_path}/j.db", name="app", claim_wait=0.2)
    assert runner.claim("app", "s1", analyse) is None  # the first invocation may start the job
    runner.submit(_spec("s1", 7, "tok-1"), analyse)
    assert runner.claim("app", "s1", analyse) == 7  # a duplicate gets the running job's result
    assert runner.claim("app", "s2", analyse) is None  # another slide is another job
    [record] = [r for r in runner.records() if r.spec.slide_id == "s1"]
    runner.forget(record)  # the job finished
    assert runner.claim("app", "s1", analyse) is None
    # A claim whose owner never stored its placeholder is taken over after claim_wait.
    assert runner.claim("app", "s3", analyse) is None
    started = time.monotonic()
    assert runner.claim("app", "s3", analyse) is None
    assert time.monotonic() - started >= 0.2
    off = HueyJobRunner(f"sqlite:///{tmp_path}/k.db", name="app", dedup=False)
    off.submit(_spec("s1", 7, "tok-2"), analyse)
    assert off.claim("app", "s1", analyse) is None


def test_the_queue_never_holds_the_apps_password(tmp_path: Path) -> None:
    from sectra_core.flows import Credentials

    runner = HueyJobRunner(f"sqlite:///{tmp_path}/j.db", name="app")
    spec = _spec("s1", 1, "tok")
    runner.submit(msgspec.structs.replace(
        spec, client_options={"credentials": Credentials("u", "pw-SECRET", "app"), "verify": False}), analyse)
    [record] = runner.records()
    assert record.spec.client_options == {"verify": False}
    assert b"pw-SECRET" not in (tmp_path / "j.db").read_bytes()
    assert "tok" not in repr(record) and "http" not in repr(record)


def test_purge_removes_old_files_only(tmp_path: Path) -> None:
    old, new = tmp_path / "a" / "old.svs", tmp_path / "b" / "new.svs"
    old.parent.mkdir()
    new.parent.mkdir()
    old.write_bytes(b"o")
    new.write_bytes(b"n")
    past = time.time() - 100
    os.utime(old, (past, past))
    (tmp_path / "fresh-empty").mkdir()
    assert purge_downloads(tmp_path, 50) == 1
    assert not old.exists() and not old.parent.exists()
    assert new.exists() and (tmp_path / "fresh-empty").exists()
    assert purge_downloads(tmp_path / "missing", 50) == 0


def _sectra(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SECTRA_")}
    environ.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "sectra_client", *args], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "env", "says"), [
    (["worker", "nosuchmodule:app"], {}, "cannot import 'nosuchmodule'"),
    (["worker", "tests.queue.queue_app"], {}, "write module:attribute"),
    (["worker", "tests.queue.queue_app:make_app"], {}, "not an AnalysisApp"),
    (["worker", "tests.queue.queue_app:nothing"], {}, "has no 'nothing'"),
    (["worker", "tests.queue.queue_app:app", "--workers", "0"], {"SECTRA_QUEUE": "sqlite:///{tmp}/j.db"}, "at least 1"),
    (["worker", "tests.queue.queue_app:app", "--purge-downloads-older-than", "1h"], {"SECTRA_QUEUE": "sqlite:///{tmp}/j.db"},
     "needs a downloads folder"),
    (["worker", "tests.queue.queue_app:app", "--queue-url", "ftp://x"], {}, "the scheme must be"),
])
def test_worker_usage_mistakes_exit_2_with_one_line(args: list[str], env: dict[str, str], says: str, tmp_path: Path) -> None:
    done = _sectra(*args, env={k: v.format(tmp=tmp_path) for k, v in env.items()})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sectra: error: ") and says in lines[0], done.stderr


def test_a_worker_picks_a_job_up_in_two_store_calls_and_drops_it_in_one(
    queue_url: str, mock: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Around a job's work, the worker talks to the SDK's store three times: read the record and
    its cancel flag, mark it running (a compare-and-set), drop its records."""
    import threading

    import urllib3

    from sectra_client.app import AppServer, create_app
    from sectra_core.app.messages import invocation_request
    from sectra_transports.app.queue.worker import Worker
    from tests.queue.queue_app import make_app

    monkeypatch.setenv("SECTRA_TRUSTED_CALLBACKS", mock.url)  # as `sectra worker` would be started
    app = make_app(queue_url)
    worker = Worker(app, worker_type="thread", check_token_after=3600)
    store = worker.runner.store
    calls: list[str] = []
    me = threading.get_ident()
    for name in ("get_many", "write", "put_if_absent", "replace_if", "delete_if", "scan"):
        original = getattr(store, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            if threading.get_ident() == me:  # not the lease thread
                calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(store, name, counted)
    huey = worker.runner.backend.huey("default")
    with AppServer(create_app(app, trusted_callbacks=[mock.url])).run() as base, urllib3.PoolManager() as pool:
        invocation = mock.build_create("queued", "slide-counted")
        request = invocation_request(f"{base}/", invocation)
        assert pool.request(request.method, request.url, body=request.body, headers=request.headers).status == 200
        task = huey.dequeue()
        calls.clear()
        huey.execute(task)
        assert [r.display_result for r in mock.get_results("queued", "slide-counted")] == ["done"]
    assert calls == ["get_many", "replace_if", "delete_if"], calls
    assert worker.runner.records() == []


def test_pickup_skips_stale_deliveries_and_forget_keeps_a_newer_jobs_claim(queue_url: str) -> None:
    """A second delivery of a job already running is skipped; a claim another job took over
    meanwhile survives this job's forget."""
    runner = HueyJobRunner(queue_url, name="compat")
    runner.submit(_spec("s1", 7, "tok-1"), analyse)
    [record] = runner.records()
    queued = record.dump().decode()
    picked, cancelled = runner.pickup(record.job_id, queued, "w1")
    assert picked is not None and not cancelled
    stored = runner.record(record.job_id)
    assert stored is not None and (stored.state, stored.worker) == ("running", "w1")
    assert runner.pickup(record.job_id, queued, "w2") == (None, False)  # a duplicate delivery
    assert runner.record(record.job_id).worker == "w1"  # type: ignore[union-attr]
    key = runner._claim_key("app", "s1", work_ref(analyse))
    newer = runner.seal(b'["other-job",8,1.0]')
    runner.store.write({key: newer})
    runner.forget(picked)
    assert runner.record(record.job_id) is None
    assert runner.store.get_many([key]) == [newer]
    assert runner.pickup(record.job_id, queued, "w3") == (None, False)  # finished


def test_concurrent_first_submits_all_reach_the_queue(queue_url: str) -> None:
    """The first invocations of a fresh app arrive together: every one is queued on the one Huey
    of its queue (a second Huey made in the race did not know the task: HueyException)."""
    from concurrent.futures import ThreadPoolExecutor

    runner = HueyJobRunner(queue_url, name="race", dedup=False)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: runner.submit(_spec(f"s{i}", i, f"tok-{i}"), analyse), range(16)))
    assert len(runner.records()) == 16
    assert runner.backend.huey("default").pending_count() == 16


def test_an_undecodable_record_does_not_stop_crash_recovery(
    queue_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """A record that is not the SDK's (junk, a planted pickle) is logged once and skipped: the
    job whose worker died is still queued again."""
    import logging

    from sectra_transports.app.queue.worker import Worker
    from tests.queue.queue_app import make_app

    monkeypatch.setenv("SECTRA_TRUSTED_CALLBACKS", "http://127.0.0.1:1")
    worker = Worker(make_app(queue_url), worker_type="thread", lease=1.0)
    runner = worker.runner
    runner.submit(_spec("s1", 7, "tok-1"), analyse)
    [record] = runner.records()
    record.state, record.worker, record.heartbeat = "running", "dead:1", time.time() - 60  # its worker died
    runner.save(record)
    runner.store.write({"job:aaa-junk": b"\x80\x04junk", "job:zzz-junk": b"{not json"})
    with caplog.at_level(logging.WARNING):
        assert worker.reap() == 1
        worker.reap()
    [again] = runner.records()
    assert (again.job_id, again.state, again.attempt) == (record.job_id, "queued", 2)
    assert caplog.text.count("'job:aaa-junk'") == 1 and caplog.text.count("'job:zzz-junk'") == 1
