"""``open_slide(...).read_region`` through the mock vs fetching the same tiles without decoding.

    python bench/read_region.py [--slide PATH] [--region 4096] [--mpp 0.5] [--rounds 5] [--quick]

1. One region at level 0 (``--region`` px square, clamped to the slide): ``read_region`` on a fresh
   remote slide (empty tile cache) against the floor, ``fetch_tiles`` of exactly the tiles it needs
   with the same client and concurrency and no decoding; and against ``openslide.OpenSlide.read_region``
   on the local file. Target (issue #15): read_region <= 1.5x the floor's time.
2. Whole-slide iteration at ``--mpp`` µm/px in 256x256 regions (the model-inference pattern,
   ``slide.iter_regions``): tiles per second with the sync and the trio client, each against its
   own floor (``fetch_tiles`` of every tile of that level, no decoding).

The slide is a generated 4608x4608 demo-style slide (written once into the demo-slide cache,
deterministic, atomically) unless ``--slide`` names a real one. The mock runs in its own process
with a tile cache big enough for the whole run, warmed first, so the server's JPEG encode is not
what is measured; each client runs in a child process of its own. Every round runs the floor and
the measured call back to back (alternating which goes first) after one uncounted warm-up round;
the figures are medians over rounds, the ratios the median of the per-round ratios. Absolute times
do not carry between machines (or runs on a busy one); the ratios are what counts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import HERE, TOKEN, mock_process  # noqa: E402

SLIDE_ID = "bench-region"
CONCURRENCY = 16
REGION_SIZE = (256, 256)


def bench_slide() -> str:
    """The 4608x4608 bench slide (generated on first use, then cached with the demo slides)."""
    from sectra_mock.demo_slides import DemoSlide, demo_slides_dir, ensure_demo_slides

    slide = DemoSlide("bench-4608", 4608, 4608, 0.25, seed=15, label=True, kind="svs")
    return str(ensure_demo_slides(demo_slides_dir(), [slide])[slide.slide_id][0])


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pair(rounds: int, floor: Any, ours: Any) -> dict[str, list[float]]:
    """Run ``floor`` and ``ours`` back to back for a warm-up and ``rounds`` counted rounds."""
    found: dict[str, list[float]] = {"floor": [], "ours": []}
    for n in range(rounds + 1):
        order = [("floor", floor), ("ours", ours)] if n % 2 else [("ours", ours), ("floor", floor)]
        times = {name: timed(fn) for name, fn in order}
        if n:  # round 0 warms caches, connections and threads
            for name, took in times.items():
                found[name].append(took)
    return found


def sync_child(url: str, size: tuple[int, int], mpp: float, rounds: int) -> dict[str, Any]:
    from sectra_core.regions import plan_region
    from sectra_transports.urllib3 import SectraClient

    with SectraClient(url, TOKEN) as client, client.open_slide(SLIDE_ID, concurrency=CONCURRENCY) as slide:
        plan = plan_region(slide.levels, (0, 0), 0, size)
        all_tiles = list(slide.pyramid.tiles(slide.levels.dzi_level(slide.level_for_mpp(mpp))))

        def read() -> None:
            slide.cache.clear()  # every round fetches and decodes every tile, as the floor fetches them
            slide.read_region((0, 0), 0, size)

        def iterate() -> None:
            slide.cache.clear()
            with slide.iter_regions(mpp, REGION_SIZE, as_array=True) as regions:
                for _ in regions:
                    pass

        return {
            "region": pair(rounds, lambda: client.fetch_tiles(SLIDE_ID, plan.tiles, concurrency=CONCURRENCY), read),
            "iterate": pair(rounds, lambda: client.fetch_tiles(SLIDE_ID, all_tiles, concurrency=CONCURRENCY), iterate),
        }


def trio_child(url: str, size: tuple[int, int], mpp: float, rounds: int) -> dict[str, Any]:
    import trio

    from sectra_core.regions import plan_region
    from sectra_transports.trio import AsyncSectraClient

    async def main() -> dict[str, Any]:
        async with AsyncSectraClient(url, TOKEN) as client:
            slide = await client.open_slide(SLIDE_ID, concurrency=CONCURRENCY)
            plan = plan_region(slide.levels, (0, 0), 0, size)
            all_tiles = list(slide.pyramid.tiles(slide.levels.dzi_level(slide.level_for_mpp(mpp))))

            async def read() -> None:
                slide.cache.clear()
                await slide.read_region((0, 0), 0, size)

            async def iterate() -> None:
                slide.cache.clear()
                async with slide.iter_regions(mpp, REGION_SIZE, as_array=True) as regions:
                    async for _ in regions:
                        pass

            async def apair(floor: Any, ours: Any) -> dict[str, list[float]]:
                found: dict[str, list[float]] = {"floor": [], "ours": []}
                for n in range(rounds + 1):
                    order = [("floor", floor), ("ours", ours)] if n % 2 else [("ours", ours), ("floor", floor)]
                    for name, fn in order:
                        start = time.perf_counter()
                        await fn()
                        if n:
                            found[name].append(time.perf_counter() - start)
                return found

            return {
                "region": await apair(lambda: client.fetch_tiles(SLIDE_ID, plan.tiles, concurrency=CONCURRENCY), read),
                "iterate": await apair(lambda: client.fetch_tiles(SLIDE_ID, all_tiles, concurrency=CONCURRENCY), iterate),
            }

    return trio.run(main)


def child(kind: str, url: str, size: tuple[int, int], mpp: float, rounds: int) -> dict[str, Any]:
    """Run one client's measurements in a fresh interpreter of its own."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--url", url, "--region", str(size[0]),
         "--region-height", str(size[1]), "--mpp", str(mpp), "--rounds", str(rounds)],
        capture_output=True, text=True, check=True, cwd=HERE.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summary(times: dict[str, list[float]]) -> tuple[float, float, float, list[float]]:
    """(median floor, median ours, median of per-round ratios, per-round ratios)."""
    ratios = [o / f for o, f in zip(times["ours"], times["floor"])]
    return statistics.median(times["floor"]), statistics.median(times["ours"]), statistics.median(ratios), ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide", help="a slide file OpenSlide reads (default: the generated 4608x4608 bench slide)")
    parser.add_argument("--region", type=int, default=None, help="region side in level-0 pixels (default 4096)")
    parser.add_argument("--region-height", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mpp", type=float, default=None, help="µm/px of the whole-slide iteration (default 0.5)")
    parser.add_argument("--rounds", type=int, default=None, help="counted rounds after the warm-up (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: a 1024 px region, 2 rounds, 2 µm/px (unless given)")
    parser.add_argument("--child", choices=["sync", "trio"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    region = args.region or (1024 if args.quick else 4096)
    mpp = args.mpp or (2.0 if args.quick else 0.5)
    rounds = args.rounds or (2 if args.quick else 5)

    if args.child:
        run = sync_child if args.child == "sync" else trio_child
        print(json.dumps(run(args.url, (region, args.region_height or region), mpp, rounds)))
        return

    import openslide

    from sectra_core.geometry import Pyramid
    from sectra_core.regions import SlideLevels, grid_mpp, plan_region

    path = str(Path(args.slide).resolve()) if args.slide else bench_slide()
    local = openslide.OpenSlide(path)
    w, h = local.dimensions
    size = (min(region, w), min(region, h))
    mpp_x = float(local.properties[openslide.PROPERTY_NAME_MPP_X])
    levels = SlideLevels(Pyramid(w, h, 240, mpp_x))  # the mock's DZI tiles are 240 px
    n_region = len(plan_region(levels, (0, 0), 0, size).tiles)
    level, _, corners = grid_mpp(levels, mpp, REGION_SIZE)
    n_level = len(list(levels.pyramid.tiles(levels.dzi_level(level))))
    opens = [timed(lambda: local.read_region((0, 0), 0, size)) for _ in range(rounds + 1)][1:]

    with mock_process("--slide-file", f"{SLIDE_ID}:{path}", "--tile-cache-mb", "1024") as url:
        results = {kind: child(kind, url, size, mpp, rounds) for kind in ("sync", "trio")}

    print(f"{Path(path).name} {w}x{h}; {rounds} rounds after a warm-up, medians; concurrency {CONCURRENCY}")
    print(f"read_region level 0, {size[0]}x{size[1]} ({n_region} tiles); local OpenSlide read_region "
          f"{statistics.median(opens) * 1000:.0f} ms")
    for kind, found in results.items():
        floor, ours, ratio, ratios = summary(found["region"])
        print(f"  {kind}: fetch_tiles (floor) {floor * 1000:7.0f} ms, read_region {ours * 1000:7.0f} ms: "
              f"{ratio:.2f}x the floor (target <= 1.5x; rounds {' '.join(f'{r:.2f}' for r in ratios)}); "
              f"{ours / statistics.median(opens):.1f}x local OpenSlide")
    print(f"whole slide at {mpp} µm/px with iter_regions (level {level}, {len(corners)} regions of "
          f"{REGION_SIZE[0]}x{REGION_SIZE[1]}, {n_level} tiles):")
    for kind, found in results.items():
        floor, ours, ratio, ratios = summary(found["iterate"])
        print(f"  {kind}: {n_level / ours:7.0f} tiles/s ({len(corners) / ours:6.0f} regions/s) vs floor "
              f"{n_level / floor:7.0f} tiles/s: {ratio:.2f}x the floor's time (rounds {' '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
