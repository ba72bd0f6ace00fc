"""A ``sectra worker`` for a test: started as a real subprocess, stopped with the test.

The pytest plugin's ``sectra_worker`` fixture uses :class:`TestWorker` (see docs/testing.md,
"Testing a queued job"); it is usable on its own in any test runner::

    with TestWorker("myapp:app", trusted_callbacks=[mock.url]) as worker:
        ...  # trigger the app; the worker runs its queued jobs
        assert worker.health()[-1]["done"] == 1
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sectra_core.errors import ConfigurationError

__all__ = ["TestWorker"]


class TestWorker:
    """``sectra worker APP_REF`` in a subprocess, ready when the constructor returns.

    ``app_ref``: ``module:attribute`` (importable from ``cwd``, the current folder by default).
    ``queue_url``: the queue (default: the app's own, or ``SECTRA_QUEUE``). ``trusted_callbacks``:
    the Sectra origins its jobs may call back (the mocks). ``args``: more ``sectra worker``
    options (thread workers unless they say otherwise). ``env``: more environment variables
    (``SECTRA_QUEUE_SECRET`` is passed on from this process's environment).
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    def __init__(
        self, app_ref: str, *args: str, queue_url: str | None = None, trusted_callbacks: Any = (),
        env: dict[str, str] | None = None, cwd: str | Path | None = None, ready_timeout: float = 60.0,
    ) -> None:
        folder = Path(cwd) if cwd is not None else Path.cwd()
        environ = dict(os.environ)
        environ["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, environ.get("PYTHONPATH", "").split(os.pathsep))])
        if queue_url:
            environ["SECTRA_QUEUE"] = queue_url
        trusted = [*filter(None, environ.get("SECTRA_TRUSTED_CALLBACKS", "").split(",")), *trusted_callbacks]
        if trusted:
            environ["SECTRA_TRUSTED_CALLBACKS"] = ",".join(trusted)
        environ.update(env or {})
        argv = [sys.executable, "-m", "sectra_client", "worker", app_ref, *args]
        if "--worker-type" not in args:
            argv += ["--worker-type", "thread"]  # starts fastest; jobs run exactly as in processes
        if "--health-interval" not in args:
            argv += ["--health-interval", "0.5"]
        self._files = Path(tempfile.mkdtemp(prefix="sectra-worker-"))
        self._out = self._files / "health.jsonl"
        self._err = self._files / "stderr.log"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(argv, cwd=folder, env=environ, stdout=out, stderr=err)
        deadline = time.monotonic() + ready_timeout
        while not any(h.get("state") == "ready" for h in self.health()):
            if self.proc.poll() is not None:
                message = self.stderr().strip().splitlines()[-1:] or [f"exit status {self.proc.returncode}"]
                self.close()
                raise ConfigurationError(f"the test worker for {app_ref} did not start: {message[0]}")
            if time.monotonic() > deadline:
                self.close()
                raise TimeoutError(f"the test worker for {app_ref} was not ready within {ready_timeout:g} s")
            time.sleep(0.05)

    def __repr__(self) -> str:
        return f"<TestWorker pid {self.proc.pid}>"

    def __enter__(self) -> TestWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def health(self) -> list[dict[str, Any]]:
        """The JSON health lines the worker printed so far (``done``, ``failed``, ``queued``...)."""
        try:
            text = self._out.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.startswith("{") and line.endswith("}")]

    def stderr(self) -> str:
        """What the worker logged so far."""
        try:
            return self._err.read_text()
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM (running jobs finish), SIGKILL after ``timeout``; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def close(self) -> None:
        """:meth:`stop`, then remove the files that held its output."""
        self.stop()
        shutil.rmtree(self._files, ignore_errors=True)
