"""Load: many concurrent clients against one mock; the mock's memory while streaming slides."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from sectra_core import schemas as s
from sectra_core.io.streaming import FileData
from sectra_transports.trio import AsyncSectraClient

ROOT = Path(__file__).resolve().parents[2]
CLIENTS, RESULTS = 50, 5000


def test_50_clients_create_and_update_5000_results() -> None:
    """The mock runs in its own process (as a real server would), so client and server do not
    share one CPU; every check goes through the REST API."""
    failures: list[BaseException] = []
    created: list[int | str] = []

    async def worker(url: str, n: int) -> None:
        async with AsyncSectraClient(url, "t") as client:
            for i in range(RESULTS // CLIENTS):
                slide = f"slide-{(n * 7 + i) % 20}"  # many clients write to the same slides
                try:
                    stored = await client.create_results("load", s.Result(slide_id=slide, display_result=f"{n}/{i} v1"))
                    created.append(stored.id)
                    updated = await client.update_results(
                        "load", stored.id, s.Result(slide_id=slide, display_result=f"{n}/{i} v2"), version_id=stored.version_id)
                    assert updated.id == stored.id and updated.version_id != stored.version_id
                except BaseException as exc:  # counted, not raised: every failure must show
                    failures.append(exc)

    async def main(url: str) -> list[s.ResultResponse]:
        with trio.fail_after(300):
            async with trio.open_nursery() as nursery:
                for n in range(CLIENTS):
                    nursery.start_soon(worker, url, n)
        async with AsyncSectraClient(url, "t") as client:
            return [r for k in range(20) for r in await client.get_all_results(f"slide-{k}", "load")]

    with mock_process(MOCK_CHILD.format(slides=0)) as (url, _pid):
        stored = trio.run(main, url)
    assert failures == []
    assert len(created) == RESULTS and len(set(map(str, created))) == RESULTS  # unique ids
    assert len(stored) == RESULTS  # each stored exactly once
    texts = sorted(r.display_result or "" for r in stored)
    assert texts == sorted(f"{n}/{i} v2" for n in range(CLIENTS) for i in range(RESULTS // CLIENTS))


MOCK_CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from sectra_mock import MockSectraServer
m = MockSectraServer(token="t", invent_slides=True)  # 20 slides the clients name
for k in range({slides}):
    m.add_synthetic_slide(f"big{{k}}", 256 * 2**20, n_files=4)
with m.run():
    print(m.url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def mock_process(code: str) -> Iterator[tuple[str, int]]:
    """A mock in a child process: yields its URL and pid; stopped when stdin closes."""
    proc = subprocess.Popen([sys.executable, "-c", code, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), proc.pid
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(20)
        proc.stdout.close()


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_mock_memory_stays_bounded_streaming_4_slides() -> None:
    async def stream(url: str, slide: str) -> int:
        async with AsyncSectraClient(url, "t") as client, client.stream_slide_files(slide) as files:
            total = 0
            async for event in files:  # read and drop: only the mock's memory is measured
                if isinstance(event, FileData):
                    total += len(event.data)
            return total

    async def main(url: str) -> list[int]:
        sizes: list[int] = []

        async def one(k: int) -> None:
            sizes.append(await stream(url, f"big{k}"))

        async with trio.open_nursery() as nursery:
            for k in range(4):
                nursery.start_soon(one, k)
        return sizes

    with mock_process(MOCK_CHILD.format(slides=4)) as (url, pid):
        before = _rss_kib(pid, "VmRSS")
        sizes = trio.run(main, url)
        peak = _rss_kib(pid, "VmHWM")
    assert sizes == [256 * 2**20] * 4  # 1 GiB of file data went through
    growth_mib = (peak - before) / 1024
    print(f"mock RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB streaming 4 slides (1 GiB)")
    assert growth_mib < 64, f"the mock grew by {growth_mib:.0f} MiB while streaming 1 GiB"
