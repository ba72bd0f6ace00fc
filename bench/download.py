"""Whole-slide download speed and memory: raw urllib3 loop vs the sync client vs the async client.

    python bench/download.py [--size-gb 1] [--files 12] [--also-gb 4] [--repeat 7] [--out-dir DIR]

The mock serves a synthetic multi-file slide (``multipart/related``) from a separate process.
Each download runs in a fresh child process so its peak RSS is its own. The baseline is a bare
urllib3 streaming loop that writes the same response bytes to one file; a second, stricter loop
reads the socket into one reused buffer as the async client does (the sync client streams
urllib3's chunks, as the baseline does), so the async client's ratio to it is the price of parsing
and safe writes alone. A warm-up round is not counted. Then curl fetches the same
slide from the mock and the same number of bytes from a bare hypercorn app streaming a constant
block, to show whether the mock is the bottleneck. Prints wall times, ratios and peak RSS.

The files are written to a memory-backed folder (``/dev/shm`` where it has room) unless
``--out-dir`` names another: every variant writes the same bytes, and on a disk the kernel's
writeback of one run's gigabyte lands in the next run's time (rounds spread 0.4-9x on the 2-core
machine), which buries the client's own cost, the thing the bars are about. ``--out-dir .``
measures against the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HERE, TOKEN, mock_process  # noqa: E402

SLIDE = "big"

# Every child times only its download: wall seconds, and the CPU seconds (user + system) its own
# process spent in it, which a busy machine disturbs much less than wall time.
CLOCK = """
import resource, sys, time
def clock():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter(), r.ru_utime + r.ru_stime
def report(start):
    end = clock()
    print(end[0] - start[0], end[1] - start[1])
"""

RAW = CLOCK + """
import urllib3
url, token, out = sys.argv[1:4]
t = clock()
http = urllib3.PoolManager()
r = http.request("GET", url + "/slides/big/files", headers={"Authorization": "Bearer " + token}, preload_content=False)
with open(out + "/raw.bin", "wb", buffering=0) as f:
    while chunk := r.read1(1024 * 1024):
        f.write(chunk)
r.release_conn()
report(t)
"""

# The stricter reference: reused-buffer socket reads as the async client makes them, no parsing.
# What separates it from the async client is the cost of the multipart decoder and the safe writes.
# (A reference loop, so it may reach under urllib3 for its socket reader; the SDK does not.)
RAW_REUSED = CLOCK + """
import urllib3
url, token, out = sys.argv[1:4]
t = clock()
http = urllib3.PoolManager()
r = http.request("GET", url + "/slides/big/files", headers={"Authorization": "Bearer " + token}, preload_content=False)
reader, left = r._fp.fp, int(r.headers["content-length"])
view = memoryview(bytearray(1024 * 1024))
with open(out + "/raw.bin", "wb", buffering=0) as f:
    while left and (n := reader.readinto1(view[:left])):
        f.write(view[:n])
        left -= n
report(t)
"""

SYNC = CLOCK + """
from sectra_client import SectraClient
url, token, out = sys.argv[1:4]
t = clock()
with SectraClient(url, token, api_version="5.0") as client:
    paths = client.download_slide_files("big", out)
report(t)
"""

ASYNC = CLOCK + """
import trio
from sectra_transports.trio import AsyncSectraClient
url, token, out = sys.argv[1:4]
async def main():
    async with AsyncSectraClient(url, token, api_version="5.0") as client:
        await client.download_slide_files("big", out)
t = clock()
trio.run(main)
report(t)
"""

BARE_HYPERCORN = """
import sys, trio
from hypercorn.config import Config
from hypercorn.trio import serve
size = int(sys.argv[1])
block = bytes(1024 * 1024)
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(size).encode()), (b"content-type", b"application/octet-stream")]})
    left = size
    while left:
        n = min(left, len(block))
        await send({"type": "http.response.body", "body": block[:n], "more_body": left > n})
        left -= n
async def main():
    config = Config(); config.bind = ["127.0.0.1:0"]; config.accesslog = None; config.errorlog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(lambda task_status: serve(app, config, task_status=task_status))
        print(binds[0], flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()
trio.run(main)
"""


class Run(NamedTuple):
    """One download in a fresh interpreter."""

    wall: float  #: seconds
    cpu: float  #: CPU seconds (user + system) of the download itself
    rss: float  #: peak RSS of the whole process, MiB


def child(code: str, url: str, out: Path) -> Run:
    """Run one download in a fresh interpreter, so its peak RSS is its own."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", code, url, TOKEN, str(out)],
        capture_output=True, text=True, check=True, cwd=HERE.parent,
    )
    wall, cpu = map(float, done.stdout.strip().splitlines()[-1].split())
    rss_kib = int(done.stderr.strip().splitlines()[-1])
    return Run(wall, cpu, rss_kib / 1024)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def curl(url: str, headers: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", *headers, url], check=True)
    return time.perf_counter() - t


def measure(size: int, n_files: int, repeat: int, out: Path, with_curl: bool) -> None:
    with mock_process("--synthetic", f"{SLIDE}:{size}:{n_files}") as url:
        variants = (("raw urllib3 loop", RAW), ("sync client", SYNC), ("async client", ASYNC),
                    ("raw reused buffer", RAW_REUSED))
        runs: dict[str, list[Run]] = {name: [] for name, _ in variants}
        for round_ in range(-1, repeat):  # round -1 warms the mock and the page cache up; not counted
            # Interleaved, so drift on a noisy machine hits all alike; the order rotates so no
            # variant always runs right after the same other one.
            shift = max(round_, 0) % len(variants)
            for name, code in variants[shift:] + variants[:shift]:
                result = child(code, url, out / "dl")
                if round_ >= 0:
                    runs[name].append(result)
                shutil.rmtree(out / "dl", ignore_errors=True)
                os.sync()  # the next run must not pay for this one's dirty pages
        raw = runs["raw urllib3 loop"]
        best_raw = min(r.wall for r in raw)
        print(f"\n{size / 2**30:.2f} GiB in {n_files} files ({size / 2**20 / best_raw:.0f} MiB/s raw), {repeat} rounds, "
              f"written to {out}")
        for name, rs in runs.items():
            # Two views of the same runs. Best against best: disturbances only ever slow a run
            # down, so the fastest run of each is the least disturbed. The median of per-round
            # ratios: each round runs every variant back to back, so a slow spell hits them alike.
            # Neither can be skewed by one lucky run of the other variant.
            best = min(r.wall for r in rs)
            ratios = sorted(r.wall / b.wall for r, b in zip(rs, raw))
            cpus = sorted(r.cpu / b.cpu for r, b in zip(rs, raw))
            cpu = median(cpus)
            print(f"  {name:18s} best {best:5.2f} s = {best / best_raw:4.2f}x raw's best   "
                  f"rounds {median(ratios):4.2f}x median ({' '.join(f'{x:.2f}' for x in ratios)})   "
                  f"CPU {cpu:4.2f}x median ({cpus[0]:.2f}-{cpus[-1]:.2f})   peak RSS {max(r.rss for r in rs):5.1f} MiB")
        ours, reused = runs["async client"], runs["raw reused buffer"]
        strict = median([a.wall / b.wall for a, b in zip(ours, reused)])
        strict_best = min(r.wall for r in ours) / min(r.wall for r in reused)
        print(f"  async client / raw reused-buffer loop (the price of parsing and safe writes): "
              f"{strict_best:.2f}x best, {strict:.2f}x median")
        if with_curl:
            mock_s = min(curl(url + f"/slides/{SLIDE}/files", ["-H", f"Authorization: Bearer {TOKEN}"]) for _ in range(repeat))
            proc = subprocess.Popen([sys.executable, "-c", BARE_HYPERCORN, str(size)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True)
            assert proc.stdout is not None and proc.stdin is not None
            bare_url = proc.stdout.readline().strip()
            bare_s = min(curl(bare_url + "/", []) for _ in range(repeat))
            proc.stdin.close()
            proc.wait(20)
            print(f"  curl from the mock {mock_s:.2f} s, from bare hypercorn {bare_s:.2f} s: "
                  f"mock/bare {mock_s / bare_s:.2f}x")
    return None


def memory_folder(*sizes_gb: float) -> Path:
    """``/dev/shm`` when it exists and holds the largest download twice over; else the current folder."""
    shm = Path("/dev/shm")
    need = 2 * max(sizes_gb) * 2**30
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > need:
        return shm
    return Path.cwd()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--also-gb", type=float, default=4.0, help="a second, larger size for the RSS check (0: skip)")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="where the downloads are written (default: /dev/shm when it has room, else here)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.out_dir or memory_folder(args.size_gb, args.also_gb)) as tmp:
        measure(int(args.size_gb * 2**30), args.files, args.repeat, Path(tmp), with_curl=True)
        if args.also_gb:
            measure(int(args.also_gb * 2**30), args.files, 1, Path(tmp), with_curl=False)


if __name__ == "__main__":
    main()
