"""Count transparent pixels inside a slide read through the mock, per level, both clients, JPEG and PNG.

Issue 24's reproduction: ``python -m tests.differential.transparency`` serves a 3001x2203 generic
tiled TIFF written by tifffile (generated into the test-slide cache) and reads every level whole
with ``read_region``; every pixel of a level lies inside the slide, so every count should be 0.
``--server deepzoom-get-tile`` (or ``edges-a-pixel-short``, ``edges-a-pixel-long``) makes the mock
send tiles as a server that rounds otherwise would (tests/differential/test_tile_geometry.py), to
show the clients alone keep the slide opaque.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import trio

from sectra_client import SectraClient
from sectra_mock import MockSectraServer
from sectra_transports.trio import AsyncSectraClient
from tests.differential.slide_factory import MATRIX, ensure

TOKEN = "transparency-token"


def counts_sync(url: str, slide_id: str, ext: str, levels: range) -> list[int]:
    """Transparent pixels per level through the blocking client."""
    with SectraClient(url, TOKEN) as client, client.open_slide(slide_id, ext=ext) as slide:
        return [int((np.asarray(slide.read_region((0, 0), k, slide.level_dimensions[k]))[..., 3] == 0).sum())
                for k in levels]


def counts_trio(url: str, slide_id: str, ext: str, levels: range) -> list[int]:
    """Transparent pixels per level through the trio client."""
    async def main() -> list[int]:
        async with AsyncSectraClient(url, TOKEN) as client:
            slide: Any = await client.open_slide(slide_id, ext=ext)
            found = []
            for k in levels:
                region = await slide.read_region((0, 0), k, slide.level_dimensions[k])
                found.append(int((np.asarray(region)[..., 3] == 0).sum()))
            return found
    return trio.run(main)


def main() -> int:
    """Print the table; exit 1 when any level shows a transparent pixel."""
    if "--server" in sys.argv:
        from sectra_mock.slides import SlideImage
        from tests.differential.test_tile_geometry import SERVERS

        kind = sys.argv[sys.argv.index("--server") + 1]
        SlideImage._deepzoom_tile = SERVERS[kind]  # type: ignore[method-assign]
        print(f"mock tiles as a {kind} server sends them")
    slide = next(m for m in MATRIX if (m.width, m.height) == (3001, 2203))
    server = MockSectraServer(token=TOKEN, demo_slides=False)
    server.add_slide_files("odd", ensure(slide))
    bad = 0
    with server.run(port=0):
        for client_name, count in (("sync", counts_sync), ("trio", counts_trio)):
            for ext in ("jpg", "png"):
                found = count(server.url, "odd", ext, range(0, 4))
                bad += sum(found)
                print(f"{slide.width}x{slide.height} {client_name:4} {ext}: transparent pixels at levels 0-3: {found}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
