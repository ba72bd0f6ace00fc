"""The ``sectra_worker`` fixture as docs/testing.md shows it: a queued job tested in pytest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.queue.conftest import ROOT
from tests.queue.queue_app import make_app


async def test_a_queued_job_runs_on_the_fixtures_worker(
    sectra_mock: Any, serve_sectra_app: Any, sectra_worker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trio

    monkeypatch.delenv("SECTRA_QUEUE_SECRET", raising=False)
    monkeypatch.setenv("SECTRA_QUEUE", f"sqlite:///{tmp_path}/jobs.db")  # the app and its worker: one file
    url = await serve_sectra_app(make_app())
    worker = sectra_worker("tests.queue.queue_app:app", cwd=ROOT)
    answer = await sectra_mock.aio.trigger(url, invocation=sectra_mock.build_create("queued", "slide-1"))
    assert answer.display_result == "Analysis queued"
    with trio.fail_after(30):
        while [r.display_result for r in sectra_mock.get_results("queued", "slide-1")] != ["done"]:
            await trio.sleep(0.05)
    with trio.fail_after(10):
        while not any(h["done"] == 1 for h in worker.health()):
            await trio.sleep(0.05)
    assert worker.stop() == 0
