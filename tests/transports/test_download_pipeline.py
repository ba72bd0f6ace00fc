"""Downloads overlap the boundary scan with the socket reads and the disk writes (issue #18) where
the transport offers ``readinto`` (trio): each chunk is scanned in a worker thread while the caller
writes the one before and reads the next. The blocking transport streams urllib3's chunks
(issue #25), scanned in the caller's thread. Files and progress stay in the caller's thread
(task); no scanning thread outlives the call."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import pytest
import trio

from sectra_core import multipart
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


def test_the_scan_runs_beside_the_reads_and_writes_in_the_callers_thread(
    make_client: Callable[..., Any], transport_name: str, mock: MockSectraServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock.add_synthetic_slide("big", 6_000_000, n_files=3)
    writes = _Writes(monkeypatch)
    scans: set[int] = set()
    receive = multipart.MultipartDecoder.receive_data

    def scanning(decoder: multipart.MultipartDecoder, data: Any, size: int | None = None) -> None:
        if len(data):  # not finish()'s end-of-stream mark
            scans.add(threading.get_ident())
        receive(decoder, data, size)

    monkeypatch.setattr(multipart.MultipartDecoder, "receive_data", scanning)
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
    assert writes.threads == progress_threads  # files are written where progress is reported
    if transport_name == "urllib3":
        assert scans == progress_threads  # streamed: scanned where it is read
    else:
        assert scans and not scans & progress_threads  # the scan ran in a worker thread
    # Every report arrives, in order, and the last one counts the whole body.
    done = [p.bytes_done for _, _, p in seen]
    assert done == sorted(done) and seen[-1][2].files_done == 3 and seen[-1][2].bytes_done == seen[-1][2].bytes_total


async def test_a_cancelled_trio_download_leaves_no_partial_file_and_a_usable_client(
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
        assert writes.active == 0
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


@pytest.mark.parametrize("field", ["chunk_size", "download_buffer"])
def test_transport_options_refuse_empty_buffers(field: str) -> None:
    from sectra_core.errors import ConfigurationError
    from sectra_core.transport import TransportOptions

    with pytest.raises(ConfigurationError, match=field):
        TransportOptions(**{field: 0})
