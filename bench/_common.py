"""Shared benchmark helpers: a mock in a subprocess, timing, peak RSS of a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = "bench-token"


@contextmanager
def server_process(script: str, *args: str) -> Iterator[str]:
    """Start the server ``bench/<script>`` with ``args``; yields the base URL it prints first, and
    stops it (it serves until its stdin closes) afterwards."""
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"{script} did not start")
        yield url
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(20)


def mock_process(*args: str) -> AbstractContextManager[str]:
    """Start ``bench/_mock_process.py`` with ``args``; yields its base URL."""
    return server_process("_mock_process.py", "--token", TOKEN, *args)


def best_of(n: int, fn: Callable[[], object]) -> float:
    """The fastest of ``n`` runs of ``fn``, in seconds (the least disturbed by a noisy machine)."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        del result  # freeing a big decoded value is not part of what was timed
    return min(times)


def child_env(**extra: str) -> dict[str, str]:
    """A child interpreter's environment: this one, with the repository put *in front of* PYTHONPATH.

    Replacing PYTHONPATH would drop whatever this process imports its packages from (``pip install
    --target DIR`` with PYTHONPATH=DIR, as on the device machine): the child dies at its first import.
    """
    paths = [str(HERE.parent), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)), **extra}


def run_child(code: str, *args: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; returns (wall seconds it printed, its peak RSS in MiB)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=child_env(),
    )
    wall = float(done.stdout.strip().splitlines()[-1])
    import resource

    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024
