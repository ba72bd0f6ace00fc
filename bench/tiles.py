"""2,000 tiles from the mock: the async client with bounded concurrency vs the sync client in sequence.

    python bench/tiles.py [--tiles 2000] [--concurrency 16] [--latency 0.005]

The mock runs in a separate process. It is run twice: with no added latency (loopback, both sides
CPU-bound on this machine) and with ``--latency`` seconds per request (a PACS across a network,
where concurrency is what pays). Prints the wall times and the sync/async ratio of each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trio  # noqa: E402

from bench._common import TOKEN, best_of, mock_process  # noqa: E402
from sectra_client import SectraClient  # noqa: E402
from sectra_transports.trio import AsyncSectraClient  # noqa: E402

SLIDE = "bench-slide"


def tile_keys(url: str, count: int) -> list[tuple[int, int, int]]:
    with SectraClient(url, TOKEN) as client:
        info = client.get_image_metadata(SLIDE)
    import math

    level = math.ceil(math.log2(max(info.image_size.width, info.image_size.height)))
    cols = info.image_size.width // info.tile_size.width
    return [(level, i % cols, i // cols) for i in range(count)]


def sync_sequential(url: str, keys: list[tuple[int, int, int]]) -> None:
    with SectraClient(url, TOKEN) as client:
        for level, col, row in keys:
            client.get_tile(SLIDE, level, col, row)


def async_concurrent(url: str, keys: list[tuple[int, int, int]], concurrency: int) -> None:
    async def main() -> None:
        async with AsyncSectraClient(url, TOKEN) as client:
            tiles = await client.fetch_tiles(SLIDE, keys, concurrency=concurrency)
            assert len(tiles) == len(keys)

    trio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tiles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.005)
    args = parser.parse_args()
    print(f"{args.tiles} tiles, async concurrency {args.concurrency}")
    for latency in (0.0, args.latency):
        with mock_process("--latency", str(latency)) as url:
            keys = tile_keys(url, args.tiles)
            sync_s = best_of(2, lambda keys=keys: sync_sequential(url, keys))
            async_s = best_of(2, lambda keys=keys: async_concurrent(url, keys, args.concurrency))
        print(f"latency {latency * 1000:.0f} ms: sync sequential {sync_s:.2f} s, "
              f"async concurrent {async_s:.2f} s, ratio sync/async {sync_s / async_s:.2f}x")


if __name__ == "__main__":
    main()
