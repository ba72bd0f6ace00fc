"""Tiles from a real slide: the mock (cold and cached) vs OpenSlide's DeepZoom generator called directly.

    python bench/tiles_real.py [--slide PATH] [--tiles N] [--rounds 5] [--quick]

The floor is what the field's reference tile server does per tile: ``DeepZoomGenerator(slide, 240,
0).get_tile`` and a Pillow JPEG encode at quality 75 (OpenSlide's own ``deepzoom_server`` example,
the quality the mock serves), run sequentially in a child process of its own. The mock runs in
another process (``bench/_mock_process.py``) holding the slide under one id per round; a third
process reads the tiles in the same order, one request at a time, with urllib3 over loopback.

Fairness: the same tiles in the same order and the same concurrency (one at a time) on both sides;
each side warms up first with one full pass (imports, the JPEG codec, worker threads, the
connection) on a handle it then discards;
each round starts cold on both sides (a fresh OpenSlide handle for the floor, a slide id the mock
has never served, so neither OpenSlide's cache nor the mock's is warm); the cached pass re-reads the
round's tiles. Figures are medians over the rounds, and the ratios compare medians of the same run,
so they hold on any machine; absolute rates do not.

Targets (issue #14): cached >= 0.5x the raw generator's tile rate; cold time within 1.5x of its.
The slide is the demo ``slide-001`` (2400x1800, 117 tiles) unless ``--slide`` names a real one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HERE, TOKEN, mock_process  # noqa: E402

SLIDE_ID = "bench-real"

#: The tiles to read: every tile, top (most detailed) level first, row by row, as an analysis app
#: walking the slide or a viewer panning a zoomed-in view asks for them.
KEYS_CODE = """
import json, sys, openslide
from openslide.deepzoom import DeepZoomGenerator
dz = DeepZoomGenerator(openslide.OpenSlide(sys.argv[1]), tile_size=240, overlap=0, limit_bounds=False)
keys = []
for level in range(dz.level_count - 1, -1, -1):
    cols, rows = dz.level_tiles[level]
    keys += [(level, c, r) for r in range(rows) for c in range(cols)]
print(json.dumps(keys[: int(sys.argv[2])]))
"""

RAW_CODE = """
import io, json, sys, time, openslide
from openslide.deepzoom import DeepZoomGenerator
keys = json.loads(sys.stdin.readline())
def tile_bytes(dz, level, col, row):
    buf = io.BytesIO()
    dz.get_tile(level, (col, row)).save(buf, "jpeg", quality=75)  # as deepzoom_server.py does
    return buf.getvalue()
def generator():
    return DeepZoomGenerator(openslide.OpenSlide(sys.argv[1]), tile_size=240, overlap=0, limit_bounds=False)
warm = generator()
for k in keys:
    tile_bytes(warm, *k)
print("ready", flush=True)
for _line in sys.stdin:  # one round per line
    dz = generator()  # a fresh handle per round: OpenSlide's tile cache starts empty
    start = time.perf_counter()
    for k in keys:
        tile_bytes(dz, *k)
    print(json.dumps(time.perf_counter() - start), flush=True)
"""

CLIENT_CODE = """
import json, sys, time, urllib3
keys = json.loads(sys.stdin.readline())
url, token, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
http = urllib3.PoolManager(maxsize=1)
headers = {"Authorization": "Bearer " + token}
def fetch(slide, level, col, row, first_byte=None):
    start = time.perf_counter()
    r = http.request("GET", f"{url}/images/{slide}_files/{level}/{col}_{row}.jpg", headers=headers, preload_content=False)
    r.read(1)
    if first_byte is not None:
        first_byte.append(time.perf_counter() - start)
    r.read()
    assert r.status == 200, r.status
    r.release_conn()
for k in keys:
    fetch(prefix + "-warm", *k)
print("ready", flush=True)
for line in sys.stdin:  # one round per line: the slide id to read, never read before
    slide, first = line.strip(), []
    start = time.perf_counter()
    for k in keys:
        fetch(slide, *k, first_byte=first)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for k in keys:
        fetch(slide, *k)
    print(json.dumps({"cold": cold, "cached": time.perf_counter() - start, "first_byte": first}), flush=True)
"""


def child(code: str, *args: str, stdin: str = "") -> Any:
    """Run ``code`` in a fresh interpreter; its last stdout line, decoded as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


class Worker:
    """A child interpreter that runs one round per line it is sent and answers one JSON line."""

    def __init__(self, code: str, *args: str, keys_json: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(keys_json + "\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a benchmark child failed to warm up")

    def round(self, line: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide", help="a slide file OpenSlide reads (default: the demo slide-001)")
    parser.add_argument("--tiles", type=int, default=2000, help="at most this many tiles (default: 2000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; figures are medians (default: 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 24 tiles, 1 round (proves it works)")
    args = parser.parse_args()
    if args.quick:
        args.tiles, args.rounds = 24, 1
    if args.slide:
        path = str(Path(args.slide).resolve())
    else:
        from sectra_mock.demo_slides import ensure_demo_slides

        path = str(ensure_demo_slides()["slide-001"][0])
    keys = child(KEYS_CODE, path, str(args.tiles))
    keys_json = json.dumps(keys)
    # One slide id per round (each its own OpenSlide handle: every round starts cold) plus one to
    # warm up on; the cache holds every tile of the run (the default 64 MiB: ~4,000 tiles).
    ids = [f"{SLIDE_ID}-{i}" for i in range(args.rounds)] + [f"{SLIDE_ID}-warm"]
    slide_args = [a for i in ids for a in ("--slide-file", f"{i}:{path}")]
    raws: list[float] = []
    rounds: list[dict[str, Any]] = []
    with mock_process(*slide_args, "--tile-cache-mb", "512") as url:
        floor = Worker(RAW_CODE, path, keys_json=keys_json)
        client = Worker(CLIENT_CODE, url, TOKEN, SLIDE_ID, keys_json=keys_json)
        try:
            # Interleaved, floor then mock in each round: a busy spell on a shared machine hits
            # both sides of a round, and each round's ratio compares neighbours.
            for slide_id in ids[:-1]:
                raws.append(floor.round("go"))
                rounds.append(client.round(slide_id))
        finally:
            floor.close()
            client.close()
    got = {k: [r[k] for r in rounds] for k in ("cold", "cached")}
    got["first_byte"] = [t for r in rounds for t in r["first_byte"]]
    raw = statistics.median(raws)
    n = len(keys)
    cold, cached = statistics.median(got["cold"]), statistics.median(got["cached"])
    fb = sorted(got["first_byte"])
    print(f"{n} tiles of {Path(path).name}, one at a time; medians of {args.rounds} round(s)")
    print(f"  floor: DeepZoomGenerator.get_tile + JPEG q75: {n / raw:8.0f} tiles/s")
    print(f"  mock, cold (decode + encode on demand):      {n / cold:8.0f} tiles/s   "
          f"time {cold / raw:.2f}x the floor's (target <= 1.5x)")
    print(f"  mock, cached:                                {n / cached:8.0f} tiles/s   "
          f"rate {raw / cached:.2f}x the floor's (target >= 0.5x)")
    print(f"  first byte of a cold tile: median {statistics.median(fb) * 1000:.1f} ms, "
          f"p95 {fb[int(0.95 * (len(fb) - 1))] * 1000:.1f} ms")
    # How much a busy machine disturbed the run: a round far from the others says so.
    print(f"  per round, cold time / floor's: {', '.join(f'{c / r:.2f}' for c, r in zip(got['cold'], raws))}"
          f" (median {statistics.median(c / r for c, r in zip(got['cold'], raws)):.2f}x)")


if __name__ == "__main__":
    main()
