"""Tiles from a real slide: the mock (cold and cached) vs OpenSlide's DeepZoom generator called directly.

    python bench/tiles_real.py [--slide PATH] [--tiles N] [--rounds 3] [--quick]

The floor is ``DeepZoomGenerator(slide, 240, 0).get_tile`` plus the same JPEG encode the mock does,
in a child process of its own. The mock runs in another process (``bench/_mock_process.py``) with
the slide added by ``add_slide_files``; a third process fetches every tile once (cold: decoded and
encoded on demand) and then again (cached), in sequence, with the sync client over loopback, and
measures the first-byte latency of cold tiles. All three are measured in the same run, so the
ratios hold on any machine; absolute rates do not.

Targets (issue #14): cached >= 0.5x the raw generator's tile rate; cold within 1.5x of its time.
The slide is the demo ``slide-001`` (2400x1800, ~110 tiles) unless ``--slide`` names a real one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HERE, TOKEN, mock_process  # noqa: E402

SLIDE_ID = "bench-real"

#: The tiles to read: every tile of the top levels first, as a viewer zoomed in would ask for them.
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
from sectra_mock.slides import encode_image
keys = json.loads(sys.stdin.read())
best = None
for _ in range(int(sys.argv[2])):
    # A fresh handle per round: OpenSlide's own tile cache starts empty, like the mock's cold pass.
    dz = DeepZoomGenerator(openslide.OpenSlide(sys.argv[1]), tile_size=240, overlap=0, limit_bounds=False)
    start = time.perf_counter()
    for level, col, row in keys:
        encode_image(dz.get_tile(level, (col, row)), "jpg")
    took = time.perf_counter() - start
    best = took if best is None else min(best, took)
print(json.dumps({"raw": best}))
"""

CLIENT_CODE = """
import json, sys, time, urllib3
keys = json.loads(sys.stdin.read())
url, token, slide = sys.argv[1], sys.argv[2], sys.argv[3]
http = urllib3.PoolManager(maxsize=1)
headers = {"Authorization": "Bearer " + token}
def fetch(level, col, row, first_byte=None):
    start = time.perf_counter()
    r = http.request("GET", f"{url}/images/{slide}_files/{level}/{col}_{row}.jpg", headers=headers, preload_content=False)
    r.read(1)
    if first_byte is not None:
        first_byte.append(time.perf_counter() - start)
    r.read()
    assert r.status == 200, r.status
    r.release_conn()
first = []
start = time.perf_counter()
for k in keys:
    fetch(*k, first_byte=first)
cold = time.perf_counter() - start
cached = None
for _ in range(int(sys.argv[4])):
    start = time.perf_counter()
    for k in keys:
        fetch(*k)
    took = time.perf_counter() - start
    cached = took if cached is None else min(cached, took)
print(json.dumps({"cold": cold, "cached": cached, "first_byte": first}))
"""


def child(code: str, *args: str, stdin: str = "") -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide", help="a slide file OpenSlide reads (default: the demo slide-001)")
    parser.add_argument("--tiles", type=int, default=2000, help="at most this many tiles (default: 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="best of N for the raw and cached passes")
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
    raw = child(RAW_CODE, path, str(args.rounds), stdin=keys_json)["raw"]
    # The cache holds every tile of the run (the default 64 MiB holds ~4,000 JPEG tiles).
    with mock_process("--slide-file", f"{SLIDE_ID}:{path}", "--tile-cache-mb", "256") as url:
        got = child(CLIENT_CODE, url, TOKEN, SLIDE_ID, str(args.rounds), stdin=keys_json)
    n = len(keys)
    raw_rate, cold_rate, cached_rate = n / raw, n / got["cold"], n / got["cached"]
    fb = sorted(got["first_byte"])
    print(f"{n} tiles of {Path(path).name}, best of {args.rounds}")
    print(f"  DeepZoomGenerator + JPEG, in-process (floor): {raw_rate:8.0f} tiles/s")
    print(f"  mock, cold (decode + encode on demand):      {cold_rate:8.0f} tiles/s   "
          f"time {got['cold'] / raw:.2f}x the floor's (target <= 1.5x)")
    print(f"  mock, cached:                                {cached_rate:8.0f} tiles/s   "
          f"{cached_rate / raw_rate:.2f}x the floor's rate (target >= 0.5x)")
    print(f"  first byte of a cold tile: median {statistics.median(fb) * 1000:.1f} ms, "
          f"p95 {fb[int(0.95 * (len(fb) - 1))] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
