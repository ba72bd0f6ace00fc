"""DICOM ANN export of a result with many polygons (issue #30), against GeoJSON export of the same result.

    python bench/dicom_ann.py [--polygons 100000] [--points 12] [--listed-holes | --outline]

Builds a primitive result of ``--polygons`` cell outlines (``--points`` points each, on a grid over
the demo DICOM slide ``slide-003``) and times, each in a fresh interpreter (its peak RSS measured
apart): ``to_dicom_ann`` plus writing the file, and ``to_geojson`` plus ``json.dumps`` of the same
result (the export this SDK had before). Without ``--listed-holes`` the result's context has no hole
list, so holes are found by nesting: a numpy box test sees that no cell lies within another and
skips the search; ``--outline`` adds one outline around every cell, so the (pure Python) search runs
and finds every cell a hole of it (the worst case); ``--listed-holes``: the list says "no hole".
Prints seconds, MiB peak RSS and the file size. No test asserts a time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import subprocess  # noqa: E402

from bench._common import child_env  # noqa: E402

SETUP = r"""
import io, json, math, sys, time
from sectra_core import schemas as s
from sectra_mock.demo_slides import ensure_demo_slides
n, k, listed, outline = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
files = ensure_demo_slides()["slide-003"]
W, H = 2000, 1500
cols = math.ceil(math.sqrt(n * W / H)); rows = math.ceil(n / cols)
dx, dy = W / cols, H / rows
r = 0.4 * min(dx, dy)
ring = [(r * math.cos(2 * math.pi * j / k), r * math.sin(2 * math.pi * j / k)) for j in range(k)]
polygons = []
for i in range(n):
    cx, cy = (i % cols + 0.5) * dx, (i // cols + 0.5) * dy
    polygons.append(s.Polygon(points=[s.Point(x=(cx + ox) / W, y=(cy + oy) / W) for ox, oy in ring]))
if outline:
    polygons.append(s.Polygon(points=[s.Point(x=0, y=0), s.Point(x=1, y=0), s.Point(x=1, y=H / W), s.Point(x=0, y=H / W)]))
item = s.PrimitiveItem(style=s.Style(stroke_style="#00ff00"), polygons=polygons)
context = {"polygonHoles": [[]]} if listed else None
result = s.Result(slide_id="slide-003", display_result=f"{n} cells", display_properties={"Cells": n},
                  data=s.ResultData(context=context, result=s.PrimitiveResult(content=[item])))
import resource
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

ANN = SETUP + r"""
from sectra_core.dicom import to_dicom_ann, slide_identity
identity = slide_identity(files)
start = time.perf_counter()
before = rss()
ann = to_dicom_ann(result, identity)
buffer = io.BytesIO()
ann.save_as(buffer, enforce_file_format=True)
seconds = time.perf_counter() - start
print(seconds, before, rss(), len(buffer.getvalue()))
"""

GEOJSON = SETUP + r"""
from sectra_core.shapes import to_geojson
info = s.ImageInfo(id="slide-003", is_streamable=True, image_size=s.Size(width=W, height=H),
                   tile_size=s.Size(width=256, height=256))
before = rss()
start = time.perf_counter()
data = json.dumps(to_geojson(result, info)).encode()
seconds = time.perf_counter() - start
print(seconds, before, rss(), len(data))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polygons", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=12)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--listed-holes", action="store_true", help="the result lists its (no) holes: no nesting search")
    mode.add_argument("--outline", action="store_true", help="one outline around all cells: the nesting search runs")
    args = parser.parse_args()
    argv = (str(args.polygons), str(args.points), "1" if args.listed_holes else "0", "1" if args.outline else "0")
    how = "listed holes" if args.listed_holes else "an outline around all, holes by nesting" if args.outline else "holes by nesting"
    for name, code in (("dicom-ann (to_dicom_ann + save_as)", ANN), ("geojson (to_geojson + json.dumps)", GEOJSON)):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True,
                              env=child_env())
        seconds, before, peak, size = done.stdout.split()
        print(f"{name}: {args.polygons} polygons x {args.points} points, "
              f"{how}: {float(seconds):.2f} s, "
              f"peak RSS {float(peak):.0f} MiB ({float(before):.0f} MiB with the result built), "
              f"{int(size) / 2**20:.1f} MiB written")


if __name__ == "__main__":
    main()
