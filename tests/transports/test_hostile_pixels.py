"""Hostile pixels and metadata (issue 27): a loopback server's tiles, label and slide info, and a
real TIFF file given to the mock, must cost a bounded amount of memory and end in typed errors.

The memory figures are a child process's peak RSS (``VmHWM``): one child runs every attack of
``tests/transports/hostile_pixels.py`` in turn. The other tests here check each error's type and
words in this process, with payloads too small to matter. Before/after figures: docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from sectra_client import SectraClient
from sectra_core.errors import (
    DecodeError,
    ImageTooLargeError,
    ImplausibleMetadataError,
    RegionTooLargeError,
    SectraError,
)
from sectra_core.retry import NO_RETRY
from sectra_transports.trio import AsyncSectraClient
from tests.transports.hostile_pixels import TOKEN, SlideServer, info, png_bomb, small_png

ROOT = Path(__file__).resolve().parents[2]
PEAK_MB = 300

#: What each attack ends in: the typed error's class, or None where the SDK serves it in budget.
EXPECTED: dict[str, str | None] = {
    "tile_bomb": "ImageTooLargeError",
    "sliver_bomb": "ImageTooLargeError",
    "label_bomb_open": None,  # the label is not decoded until it is read
    "label_bomb_read": "ImageTooLargeError",
    "huge_tile_size": "ImplausibleMetadataError",
    "tiny_mpp": "ImplausibleMetadataError",
    "huge_read_region": "RegionTooLargeError",
    "iter_regions_giant": None,  # its first region comes at once
    "mock_single_level": None,  # refused as a slide with a warning naming the file; tiles answer JSON
    "mock_lying_tiff": None,  # the same
}


def test_every_attack_ends_typed_and_under_300_mb_in_one_child() -> None:
    """Before (2-core, loaded): a bomb tile's stand-in 1.6 GB, the label 3.1 GB at open_slide,
    tileSize 20000 a MemoryError, a tiny µm/px 1.06 GB, iter_regions on 10^6 x 10^6 a MemoryError
    at 2.9 GB (3 GB cap), the mock's single-level TIFF 1.2 GB a tile."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SECTRA_HOSTILE_BOMB_SIDE": "9000"}
    proc = subprocess.run([sys.executable, "-m", "tests.transports.hostile_pixels", *EXPECTED], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcomes = {r["attack"]: r for r in lines if "attack" in r}
    assert set(outcomes) == set(EXPECTED), proc.stderr[-2000:]
    for name, expected in EXPECTED.items():
        got = outcomes[name]
        assert got["error"] == expected, (name, got)
        assert expected is None or got["typed"], (name, got)
    peak = next(r["peak_rss_mb"] for r in lines if "peak_rss_mb" in r)
    assert 0 < peak < PEAK_MB, f"peak RSS {peak} MB"


def open_slide(server: SlideServer, **options: Any) -> Any:
    client = SectraClient(server.url, TOKEN, retry=NO_RETRY)
    return client, client.open_slide("s1", **options)


@pytest.mark.parametrize(("fields", "words"), [
    ({"tile": 8}, "tileSize 8x8 is not a square between 16 and 2048"),
    ({"tile": 4096}, "tileSize 4096x4096"),
    ({"width": 2**21 + 1}, "imageSize 2097153x1024 is outside 1..2097152"),
    ({"mpp": 1e-4}, "micronsPerPixel 0.0001 is outside 0.001..1000.0"),
    ({"mpp": 5000.0}, "micronsPerPixel 5000.0"),
])
def test_slide_info_outside_the_bounds_is_refused_at_open(fields: dict[str, Any], words: str) -> None:
    width = fields.pop("width", 1024)
    with SlideServer(info(width, 1024, **fields)) as server, pytest.raises(ImplausibleMetadataError, match=words) as err:
        open_slide(server)
    assert "slide 's1'" in str(err.value) and isinstance(err.value, SectraError)


def test_a_non_square_tile_size_is_refused() -> None:
    body = info(1024, 1024)
    body["tileSize"] = {"width": 256, "height": 64}
    with SlideServer(body) as server, pytest.raises(ImplausibleMetadataError, match="tileSize 256x64"):
        open_slide(server)


def test_a_tile_of_another_size_is_refused_from_its_header_naming_slide_level_and_tile() -> None:
    with SlideServer(info(1024, 1024), tile=lambda *_: (200, small_png(600, 600))) as server:
        client, slide = open_slide(server, ext="png")
        with client, pytest.raises(ImageTooLargeError, match=r"slide 's1', tile \(10, 0, 0\) declares 600x600") as err:
            slide.read_region((0, 0), 0, (16, 16))
    assert "refused before decoding" in str(err.value)


def test_the_trio_client_refuses_the_same_tile() -> None:
    async def main() -> None:
        async with AsyncSectraClient(server.url, TOKEN, retry=NO_RETRY) as client:
            slide = await client.open_slide("s1", ext="png")
            with pytest.raises(ImageTooLargeError, match=r"tile \(10, 0, 0\) declares 600x600"):
                await slide.read_region((0, 0), 0, (16, 16))

    with SlideServer(info(1024, 1024), tile=lambda *_: (200, small_png(600, 600))) as server:
        trio.run(main)


def test_pillows_own_limit_still_wins_where_it_is_lower(monkeypatch: pytest.MonkeyPatch) -> None:
    """A global MAX_IMAGE_PIXELS below a label's size: Pillow's DecompressionBombError comes out typed."""
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with SlideServer(info(1024, 1024), label=png_bomb(300, 300)) as server:
        client, slide = open_slide(server)
        with client, pytest.raises(ImageTooLargeError, match="MAX_IMAGE_PIXELS"):
            slide.associated_images["label"]


def test_the_label_is_read_only_when_asked_and_a_small_one_still_works() -> None:
    with SlideServer(info(1024, 1024), label=small_png(40, 30)) as server:
        client, slide = open_slide(server)
        with client:
            assert list(slide.associated_images) == ["label"] and len(slide.associated_images) == 1
            assert "label" in slide.associated_images and "macro" not in slide.associated_images
            label = slide.associated_images["label"]
            assert (label.mode, label.size) == ("RGBA", (40, 30))
    with SlideServer(info(1024, 1024), label=b"not an image") as server:
        client, slide = open_slide(server)  # opening does not look at it, nor does `in`
        assert "label" in slide.associated_images
        with client, pytest.raises(DecodeError, match="the label image"):
            slide.associated_images["label"]


def test_regions_past_the_byte_budget_say_to_use_iter_regions() -> None:
    with SlideServer(info(40000, 40000, mpp=0.25)) as server:
        client, slide = open_slide(server, max_region_bytes=1 << 20)  # 1 MiB: 512x512 RGBA
        with client:
            with pytest.raises(RegionTooLargeError, match=r"read_region of 1024x1024 pixels needs 4 MiB.*iter_regions"):
                slide.read_region((0, 0), 0, (1024, 1024))
            # 500x500 out fits, but it is read as 600x600 level-0 pixels: those count too
            with pytest.raises(RegionTooLargeError, match="read_region_mpp at 0.3 um/px reads a region"):
                slide.read_region_mpp((0, 0), 0.3, (500, 500))
            with pytest.raises(RegionTooLargeError, match="get_thumbnail of 4096x4096"):
                slide.get_thumbnail((4096, 4096))
            with pytest.raises(RegionTooLargeError, match="iter_regions at 0.3 um/px"):
                slide.iter_regions(0.3, (500, 500))
            slide.max_region_bytes = 8 << 20  # settable: now it fits
            assert slide.read_region((0, 0), 0, (1024, 1024)).size == (1024, 1024)


def test_large_tiles_are_fetched_fewer_at_a_time() -> None:
    """At tileSize 2048 (29 MB a tile decoded) a 64 MiB budget lets 2 tiles be in flight, not 16."""
    import threading
    import time

    tile = small_png(2048, 2048)
    lock = threading.Lock()
    now, most = [0], [0]

    def serve(level: int, col: int, row: int) -> tuple[int, bytes]:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        time.sleep(0.05)  # holds each answer open so that requests in flight overlap
        with lock:
            now[0] -= 1
        return 200, tile

    with SlideServer(info(8192, 8192, tile=2048), tile=serve) as server:
        client, slide = open_slide(server, ext="png", max_region_bytes=64 << 20, cache_bytes=0)
        with client:
            region = slide.read_region((0, 0), 0, (4096, 4096), as_array=True)
    assert region.shape == (4096, 4096, 4) and region[..., 3].min() == 255
    assert 1 <= most[0] <= 2
