"""Downloads overlap the socket reads with the scan and the disk writes (issue #18): each chunk is
fed in a worker thread while the next is read, through both transports against the real mock.
Progress reaches the caller in its own thread (task); no writer outlives the call."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import trio

from sectra_core.io import files
from sectra_core.io.files import Progress
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN


class _Writes:
    """Counts FileSink writes: on which threads, and how many are under way right now."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.threads: set[int] = set()
        self.active = 0
        self.lock = threading.Lock()
        write = files.FileSink._write

        def counting(sink: files.FileSink, data: Any) -> None:
            with self.lock:
                self.active += 1
                self.threads.add(threading.get_ident())
            try:
                write(sink, data)
            finally:
                with self.lock:
                    self.active -= 1

        monkeypatch.setattr(files.FileSink, "_write", counting)


def _in_trio() -> bool:
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


def test_writes_run_beside_the_reads_and_progress_in_the_callers_thread(
    make_client: Callable[..., Any], transport_name: str, mock: MockSectraServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock.add_synthetic_slide("big", 6_000_000, n_files=3)
    writes = _Writes(monkeypatch)
    seen: list[tuple[int, bool, Progress]] = []
    client = make_client(mock)
    paths = client.download_slide_files(
        "big", tmp_path, progress=lambda p: seen.append((threading.get_ident(), _in_trio(), p)))
    assert [p.stat().st_size for p in paths] == [2_000_000] * 3
    progress_threads = {thread for thread, _, _ in seen}
    assert len(progress_threads) == 1
    if transport_name == "urllib3":
        assert progress_threads == {threading.get_ident()}  # the test's own thread
    else:
        assert all(in_trio for _, in_trio, _ in seen)  # the trio task's thread, not a worker's
    assert writes.threads and not writes.threads & progress_threads  # written in a worker thread
    # Every report arrives, in order, and the last one counts the whole body.
    done = [p.bytes_done for _, _, p in seen]
    assert done == sorted(done) and seen[-1][2].files_done == 3 and seen[-1][2].bytes_done == seen[-1][2].bytes_total


async def test_a_cancelled_trio_download_waits_for_its_writer_and_leaves_no_partial_file(
    mock: MockSectraServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock.add_synthetic_slide("big", 30_000_000, n_files=2)
    writes = _Writes(monkeypatch)
    async with AsyncSectraClient(mock.url, TOKEN) as client:
        with trio.CancelScope() as scope:

            def cancel_midway(p: Progress) -> None:
                if p.bytes_done > 5_000_000:
                    scope.cancel()

            await client.download_slide_files("big", tmp_path, progress=cancel_midway)
        assert scope.cancelled_caught
        assert writes.active == 0  # the writer had finished its chunk before the call returned
        assert list(tmp_path.iterdir()) == []  # no partial file, no completed one either
        # The client is still usable: the cut connection was not given back to the pool.
        assert (await client.get_image_metadata("big")).id == "big"


def test_a_progress_callback_that_raises_stops_the_download_cleanly(
    make_client: Callable[..., Any], mock: MockSectraServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock.add_synthetic_slide("big", 30_000_000, n_files=2)
    writes = _Writes(monkeypatch)

    def stop(p: Progress) -> None:
        if p.bytes_done > 5_000_000:
            raise KeyboardInterrupt  # as a Ctrl-C inside a progress bar

    client = make_client(mock)
    with pytest.raises(KeyboardInterrupt):
        client.download_slide_files("big", tmp_path, progress=stop)
    assert writes.active == 0
    assert list(tmp_path.iterdir()) == []
    assert client.get_image_metadata("big").id == "big"
