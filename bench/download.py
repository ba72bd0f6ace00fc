"""Whole-slide download speed and memory: raw urllib3 loop vs the sync client vs the async client.

    python bench/download.py [--size-gb 1] [--files 12] [--also-gb 4] [--repeat 5]

The mock serves a synthetic multi-file slide (``multipart/related``) from a separate process.
Each download runs in a fresh child process so its peak RSS is its own. The baseline is a bare
urllib3 streaming loop that writes the same response bytes to one file. Then curl fetches the same
slide from the mock and the same number of bytes from a bare hypercorn app streaming a constant
block, to show whether the mock is the bottleneck. Prints wall times, ratios and peak RSS.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HERE, TOKEN, mock_process  # noqa: E402

SLIDE = "big"

RAW = """
import sys, time, urllib3
url, token, out = sys.argv[1:4]
t = time.perf_counter()
http = urllib3.PoolManager()
r = http.request("GET", url + "/slides/big/files", headers={"Authorization": "Bearer " + token}, preload_content=False)
with open(out + "/raw.bin", "wb", buffering=0) as f:
    while chunk := r.read1(1024 * 1024):
        f.write(chunk)
r.release_conn()
print(time.perf_counter() - t)
"""

SYNC = """
import sys, time
from sectra_client import SectraClient
url, token, out = sys.argv[1:4]
t = time.perf_counter()
with SectraClient(url, token, api_version="5.0") as client:
    paths = client.download_slide_files("big", out)
print(time.perf_counter() - t)
"""

ASYNC = """
import sys, time, trio
from sectra_transports.trio import AsyncSectraClient
url, token, out = sys.argv[1:4]
async def main():
    async with AsyncSectraClient(url, token, api_version="5.0") as client:
        await client.download_slide_files("big", out)
t = time.perf_counter()
trio.run(main)
print(time.perf_counter() - t)
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


def child(code: str, url: str, out: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one download in a fresh interpreter."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-c", code, url, TOKEN, str(out)],
        capture_output=True, text=True, check=True, cwd=HERE.parent,
    )
    wall = float(done.stdout.strip().splitlines()[-1])
    rss_kib = int(done.stderr.strip().splitlines()[-1])
    return wall, rss_kib / 1024


def curl(url: str, headers: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(["curl", "-s", "-o", "/dev/null", *headers, url], check=True)
    return time.perf_counter() - t


def measure(size: int, n_files: int, repeat: int, out: Path, with_curl: bool) -> None:
    with mock_process("--synthetic", f"{SLIDE}:{size}:{n_files}") as url:
        variants = (("raw urllib3 loop", RAW), ("sync client", SYNC), ("async client", ASYNC))
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
        for _ in range(repeat):  # interleaved, so drift on a noisy machine hits all alike
            for name, code in variants:
                runs[name].append(child(code, url, out / "dl"))
                shutil.rmtree(out / "dl", ignore_errors=True)
                os.sync()  # the next run must not pay for this one's dirty pages
        results = {n: (min(r[0] for r in rs), max(r[1] for r in rs)) for n, rs in runs.items()}
        raw_runs = [r[0] for r in runs["raw urllib3 loop"]]
        base = results["raw urllib3 loop"][0]
        print(f"\n{size / 2**30:.2f} GiB in {n_files} files ({size / 2**20 / base:.0f} MiB/s raw), {repeat} rounds")
        for name, (wall, rss) in results.items():
            # Each round runs raw, sync and async back to back; the median of the per-round ratios
            # is what a noisy machine cannot skew (a lucky raw run alone would skew best-of).
            ratios = sorted(r[0] / b for r, b in zip(runs[name], raw_runs))
            median = ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1:][:2]) / 2
            print(f"  {name:18s} best {wall:6.2f} s  median ratio {median:5.2f}x raw "
                  f"(rounds {', '.join(f'{x:.2f}' for x in ratios)})   peak RSS {rss:6.1f} MiB")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--also-gb", type=float, default=4.0, help="a second, larger size for the RSS check (0: skip)")
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        measure(int(args.size_gb * 2**30), args.files, args.repeat, Path(tmp), with_curl=True)
        if args.also_gb:
            measure(int(args.also_gb * 2**30), args.files, 1, Path(tmp), with_curl=False)


if __name__ == "__main__":
    main()
