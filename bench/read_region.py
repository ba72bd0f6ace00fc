"""``open_slide(...).read_region`` through the mock vs fetching the same tiles without decoding.

    python bench/read_region.py [--slide PATH] [--region 4096] [--mpp 0.5] [--rounds 3] [--quick]

1. One region at level 0 (``--region`` px square, clamped to the slide): ``read_region`` on a fresh
   remote slide (empty tile cache) against the floor, ``fetch_tiles`` of exactly the tiles it needs
   with the same client and concurrency and no decoding; and against ``openslide.OpenSlide.read_region``
   on the local file. Target (issue #15): read_region <= 1.5x the floor's time.
2. Whole-slide iteration at ``--mpp`` µm/px in 256x256 regions (the model-inference pattern):
   regions and tiles per second with the sync and the trio client, each against its own floor
   (fetching every tile of that level once).

The mock runs in its own process with a tile cache big enough for the whole run, warmed first, so
the server's JPEG encode is not what is measured. The demo ``slide-001`` (2400x1800) unless
``--slide`` names a real slide; all ratios come from one run (absolute rates do not carry).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import TOKEN, best_of, mock_process  # noqa: E402

SLIDE_ID = "bench-region"
CONCURRENCY = 16


def grid(dimensions: tuple[int, int], step: int) -> list[tuple[int, int]]:
    """Level-0 top-left corners of the regions that tile the slide."""
    w, h = dimensions
    return [(x, y) for y in range(0, h, step) for x in range(0, w, step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slide", help="a slide file OpenSlide reads (default: the demo slide-001)")
    parser.add_argument("--region", type=int, default=4096, help="region side in level-0 pixels (default 4096)")
    parser.add_argument("--mpp", type=float, default=0.5, help="µm/px of the whole-slide iteration (default 0.5)")
    parser.add_argument("--rounds", type=int, default=3, help="best of N")
    parser.add_argument("--quick", action="store_true", help="smoke run: a 512 px region, 1 round, 8 µm/px")
    args = parser.parse_args()
    if args.quick:
        args.region, args.rounds, args.mpp = 512, 1, 8.0

    import openslide
    import trio

    from sectra_core.regions import plan_region
    from sectra_transports.trio import AsyncSectraClient
    from sectra_transports.urllib3 import SectraClient

    if args.slide:
        path = str(Path(args.slide).resolve())
    else:
        from sectra_mock.demo_slides import ensure_demo_slides

        path = str(ensure_demo_slides()["slide-001"][0])
    local = openslide.OpenSlide(path)
    w, h = local.dimensions
    size = (min(args.region, w), min(args.region, h))

    with mock_process("--slide-file", f"{SLIDE_ID}:{path}", "--tile-cache-mb", "1024") as url:
        with SectraClient(url, TOKEN) as client:
            probe = client.open_slide(SLIDE_ID)
            plan = plan_region(probe.levels, (0, 0), 0, size)
            level = probe.level_for_mpp(args.mpp)
            step = round(256 * args.mpp / float(probe.properties["openslide.mpp-x"]))
            corners = grid(probe.dimensions, step)
            all_tiles = list(probe.pyramid.tiles(probe.levels.dzi_level(level)))
            client.fetch_tiles(SLIDE_ID, list(plan.tiles) + all_tiles, concurrency=CONCURRENCY)  # warm the mock

            floor = best_of(args.rounds, lambda: client.fetch_tiles(SLIDE_ID, plan.tiles, concurrency=CONCURRENCY))
            opened = best_of(args.rounds, lambda: client.open_slide(SLIDE_ID, concurrency=CONCURRENCY))
            slide = client.open_slide(SLIDE_ID, concurrency=CONCURRENCY)

            def read() -> object:
                slide.cache.clear()  # every round fetches and decodes every tile, as the floor fetches them
                return slide.read_region((0, 0), 0, size)

            ours = best_of(args.rounds, read)
            opens = best_of(args.rounds, lambda: local.read_region((0, 0), 0, size))

            def sync_iterate() -> None:
                slide.cache.clear()
                for corner in corners:
                    slide.read_region_mpp(corner, args.mpp, (256, 256), as_array=True)

            sync_floor = best_of(args.rounds, lambda: client.fetch_tiles(SLIDE_ID, all_tiles, concurrency=CONCURRENCY))
            sync_iter = best_of(args.rounds, sync_iterate)

        async def trio_times() -> tuple[float, float]:
            async with AsyncSectraClient(url, TOKEN) as aclient:
                await aclient.fetch_tiles(SLIDE_ID, all_tiles[:1])
                floors, iters = [], []
                slide: Any = await aclient.open_slide(SLIDE_ID, concurrency=CONCURRENCY)
                for _ in range(args.rounds):
                    start = time.perf_counter()
                    await aclient.fetch_tiles(SLIDE_ID, all_tiles, concurrency=CONCURRENCY)
                    floors.append(time.perf_counter() - start)
                    slide.close()  # an empty tile cache each round
                    start = time.perf_counter()
                    for corner in corners:
                        await slide.read_region_mpp(corner, args.mpp, (256, 256), as_array=True)
                    iters.append(time.perf_counter() - start)
                return min(floors), min(iters)

        trio_floor, trio_iter = trio.run(trio_times)

    n = len(plan.tiles)
    print(f"{Path(path).name} {w}x{h}; best of {args.rounds}; concurrency {CONCURRENCY}")
    print(f"read_region level 0, {size[0]}x{size[1]} ({n} tiles):")
    print(f"  fetch_tiles, no decode (floor): {floor * 1000:8.1f} ms")
    print(f"  remote read_region (sync):      {ours * 1000:8.1f} ms   {ours / floor:.2f}x the floor (target <= 1.5x)")
    print(f"  open_slide (info + label, once per slide): {opened * 1000:8.1f} ms")
    print(f"  local OpenSlide read_region:    {opens * 1000:8.1f} ms   remote is {ours / opens:.1f}x local")
    m = len(all_tiles)
    print(f"whole slide at {args.mpp} µm/px (level {level}, {len(corners)} regions of 256x256, {m} tiles):")
    for name, fl, it in [("sync", sync_floor, sync_iter), ("trio", trio_floor, trio_iter)]:
        print(f"  {name}: {m / it:8.0f} tiles/s ({len(corners) / it:7.0f} regions/s) vs floor {m / fl:8.0f} tiles/s"
              f"   {it / fl:.2f}x the floor's time")


if __name__ == "__main__":
    main()
