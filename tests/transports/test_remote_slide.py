"""``client.open_slide``: OpenSlide's interface over the IA-API, checked against OpenSlide itself.

The same test body runs on ``openslide.OpenSlide(file)``, on the sync client's remote slide and on
the trio client's (through a portal thread), all reading the demo slides the mock serves.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import trio
from PIL import Image

from sectra_client import SectraClient
from sectra_core.errors import DecodeError, NotFoundError, NotSlideFileError, ValidationError
from sectra_mock import MockSectraServer
from sectra_mock.demo_slides import ensure_demo_slides
from sectra_transports.downloaded import open_downloaded
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN
from tests.transports.conftest import PortalClient, TrioPortal

#: Mean absolute difference per channel that the mock's JPEG re-encoding may add. The mock encodes
#: at quality 75 (OpenSlide's deepzoom_server's); slide-003's DICOM tiles are JPEG already, so its
#: regions carry two generations of JPEG noise (measured 6.04 at q75). PNG tiles are compared
#: exactly in test_lossless_tiles_are_exact_where_levels_match.
JPEG_NOISE = 7.0


class PortalSlide:
    """An :class:`AsyncRemoteSlide` driven from blocking code: awaited methods run in the portal."""

    def __init__(self, portal: TrioPortal, slide: Any) -> None:
        self._portal, self._slide = portal, slide

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._slide, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **k: self._portal.run(functools.partial(attr, *a, **k))
        return attr

    def close(self) -> None:
        self._slide.close()


@pytest.fixture
def demo(make_mock: Callable[..., MockSectraServer]) -> MockSectraServer:
    return make_mock(invent_slides=False)


@pytest.fixture
def open_remote(demo: MockSectraServer, transport_name: str, portal: TrioPortal) -> Iterator[Callable[..., Any]]:
    """``open_remote(slide_id, **options)``: the parametrised client's remote slide on the demo mock."""
    clients: list[Any] = []

    def open_(slide_id: str, **options: Any) -> Any:
        if transport_name == "urllib3":
            client: Any = SectraClient(demo.url, TOKEN)
            clients.append(client)
            return client.open_slide(slide_id, **options)
        client = PortalClient(portal, AsyncSectraClient(demo.url, TOKEN))
        clients.append(client)
        return PortalSlide(portal, client.open_slide(slide_id, **options))

    yield open_
    for client in clients:
        client.close()


def local(slide_id: str) -> Any:
    return openslide.OpenSlide(str(ensure_demo_slides()[slide_id][0]))


def check_openslide_interface(slide: Any) -> None:
    """What code written for ``openslide.OpenSlide`` relies on; must pass on both kinds of slide."""
    w, h = slide.dimensions
    assert slide.level_dimensions[0] == (w, h)
    assert slide.level_count == len(slide.level_dimensions) == len(slide.level_downsamples) >= 2
    assert slide.level_downsamples[0] == 1.0 and list(slide.level_downsamples) == sorted(slide.level_downsamples)
    for (lw, lh), ds in zip(slide.level_dimensions, slide.level_downsamples):
        assert abs(lw * ds - w) <= ds and abs(lh * ds - h) <= ds
    top = slide.level_count - 1
    assert slide.get_best_level_for_downsample(0.5) == 0 and slide.get_best_level_for_downsample(1.0) == 0
    assert slide.get_best_level_for_downsample(1e6) == top
    for level, ds in enumerate(slide.level_downsamples):
        assert slide.get_best_level_for_downsample(ds + 0.01) == level
    # a region across the bottom-right corner: opaque inside, transparent outside
    region = slide.read_region((w - 50, h - 30), 0, (100, 60))
    assert isinstance(region, Image.Image) and region.mode == "RGBA" and region.size == (100, 60)
    assert region.getpixel((10, 10))[3] == 255 and region.getpixel((99, 59)) == (0, 0, 0, 0)
    before = slide.read_region((-20, -20), 0, (40, 40))
    assert before.getpixel((0, 0)) == (0, 0, 0, 0) and before.getpixel((39, 39))[3] == 255
    whole = slide.read_region((0, 0), top, slide.level_dimensions[top])
    assert whole.size == slide.level_dimensions[top] and whole.getextrema()[3] == (255, 255)
    thumb = slide.get_thumbnail((200, 200))
    assert thumb.mode == "RGB" and max(thumb.size) == 200 and thumb.size[0] / thumb.size[1] == pytest.approx(w / h, rel=0.02)
    label = slide.associated_images["label"]
    assert isinstance(label, Image.Image) and label.size[0] > 0
    assert float(slide.properties["openslide.mpp-x"]) == float(slide.properties["openslide.mpp-y"]) == 0.25
    assert int(slide.properties["openslide.level-count"]) == slide.level_count


@pytest.mark.parametrize("slide_id", ["slide-001", "slide-003"])
def test_openslide_interface_on_openslide(slide_id: str) -> None:
    with local(slide_id) as slide:
        check_openslide_interface(slide)


@pytest.mark.parametrize("slide_id", ["slide-001", "slide-003"])
def test_openslide_interface_on_the_remote_slide(open_remote: Callable[..., Any], slide_id: str) -> None:
    slide = open_remote(slide_id)
    check_openslide_interface(slide)
    slide.close()


# (location, remote level, local level with the same downsample, size): inside one tile, across
# tile borders (the DZI tiles are 240 px), across the slide's edge, at downsample 4.
REGIONS = [
    ((100, 100), 0, 0, (120, 90)),
    ((200, 230), 0, 0, (500, 300)),
    ((1900, 1300), 0, 0, (700, 600)),
    ((0, 0), 2, 1, (300, 200)),
    ((1200, 880), 2, 1, (400, 300)),
]


@pytest.mark.parametrize("slide_id", ["slide-001", "slide-003"])
def test_read_region_equals_openslide(open_remote: Callable[..., Any], slide_id: str) -> None:
    """Within JPEG noise of OpenSlide on the same file, alpha (the slide's extent) exactly equal."""
    reference = local(slide_id)
    slide = open_remote(slide_id)
    for location, level, local_level, size in REGIONS:
        assert slide.level_downsamples[level] == pytest.approx(reference.level_downsamples[local_level])
        expected = np.asarray(reference.read_region(location, local_level, size), dtype=np.int16)
        got = np.asarray(slide.read_region(location, level, size), dtype=np.int16)
        assert got.shape == expected.shape
        assert np.array_equal(got[..., 3], expected[..., 3]), (location, level)
        inside = expected[..., 3] == 255
        assert np.abs(got[..., :3] - expected[..., :3])[inside].mean() < JPEG_NOISE, (location, level)
        array = slide.read_region(location, level, size, as_array=True)
        assert array.dtype == np.uint8 and np.array_equal(array, got.astype(np.uint8))


def test_lossless_tiles_are_exact_where_levels_match(open_remote: Callable[..., Any]) -> None:
    """With PNG tiles the level-0 pixels are OpenSlide's bit for bit (the stitching adds nothing)."""
    reference = local("slide-001")
    slide = open_remote("slide-001", ext="png")
    for location, size in [((230, 470), (300, 50)), ((2300, 1700), (200, 200))]:
        assert np.array_equal(np.asarray(slide.read_region(location, 0, size)), np.asarray(reference.read_region(location, 0, size)))


def test_read_region_at_a_resolution(open_remote: Callable[..., Any]) -> None:
    slide = open_remote("slide-001")  # 0.25 µm/px
    assert [slide.level_for_mpp(m) for m in (0.1, 0.25, 0.4, 0.5, 0.6, 1.0, 100.0)] == [0, 0, 0, 1, 1, 2, slide.level_count - 1]
    exact = slide.read_region_mpp((240, 240), 1.0, (150, 100), as_array=True)  # level 2 as is
    assert np.array_equal(exact, slide.read_region((240, 240), 2, (150, 100), as_array=True))
    resized = slide.read_region_mpp((0, 0), 0.75, (200, 150))  # level 1 (0.5 µm/px) shrunk by 2/3
    assert resized.size == (200, 150) and resized.mode == "RGBA"
    expected = local("slide-001").read_region((0, 0), 0, (600, 450)).resize((200, 150), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(resized, np.int16)[..., :3] - np.asarray(expected, np.int16)[..., :3]).mean()
    assert diff < JPEG_NOISE
    with pytest.raises(ValidationError, match="positive"):
        slide.read_region_mpp((0, 0), 0, (10, 10))
    with pytest.raises(ValidationError, match="levels 0..4"):
        slide.read_region((0, 0), 9, (10, 10))
    with pytest.raises(ValidationError, match="at least 1x1"):
        slide.read_region((0, 0), 0, (0, 10))


def test_tile_cache_has_a_byte_budget_and_spares_requests(open_remote: Callable[..., Any], demo: MockSectraServer) -> None:
    slide = open_remote("slide-002", cache_bytes=2 * 240 * 240 * 3)  # room for two decoded tiles
    served = lambda: demo.tile_cache.hits + demo.tile_cache.misses  # noqa: E731 - every tile request asks the mock's cache
    slide.read_region((0, 0), 0, (240, 240))
    first = served()
    slide.read_region((10, 10), 0, (200, 200))  # the same tile: from the client's cache
    assert served() == first and slide.cache.hits == 1
    slide.read_region((0, 0), 0, (720, 240))  # three tiles: the budget keeps two
    assert slide.cache.bytes <= 2 * 240 * 240 * 3 and len(slide.cache) == 2
    tiny = open_remote("slide-002", cache_bytes=100)  # smaller than one tile: nothing is kept
    tiny.read_region((0, 0), 0, (240, 240))
    assert tiny.cache.bytes == 0 and len(tiny.cache) == 0


def test_focal_plane_and_optical_path_are_selectable(open_remote: Callable[..., Any]) -> None:
    default = open_remote("slide-001")
    chosen = open_remote("slide-001", focal_plane="0", optical_path="0")  # sent as _0 and ?opticalPath=0
    assert (chosen.focal_plane, chosen.optical_path) == ("0", "0")
    assert np.array_equal(chosen.read_region((0, 0), 0, (300, 300), as_array=True),
                          default.read_region((0, 0), 0, (300, 300), as_array=True))
    with pytest.raises(ValidationError, match=r"focal plane '7' does not exist on this slide; it has \['0'\]"):
        open_remote("slide-001", focal_plane="7")
    with pytest.raises(ValidationError, match="optical path 'FITC'"):
        default.select(optical_path="FITC")


def test_a_slide_without_a_label_has_no_associated_label(open_remote: Callable[..., Any]) -> None:
    slide = open_remote("slide-002")
    assert dict(slide.associated_images) == {} and "sectra.slide-id" in slide.properties


@pytest.mark.parametrize("slide_id", ["slide-001", "slide-003"])
def test_open_downloaded_opens_the_downloaded_slide(demo: MockSectraServer, tmp_path: Path, slide_id: str) -> None:
    with SectraClient(demo.url, TOKEN) as client:
        paths = client.download_slide_files(slide_id, tmp_path)
    for order in (paths, list(reversed(paths))):  # any file of a DICOM series opens all of it
        with open_downloaded(order) as slide:
            with local(slide_id) as reference:
                assert slide.dimensions == reference.dimensions and slide.level_count == reference.level_count
                assert "label" in list(slide.associated_images)
                assert np.array_equal(np.asarray(slide.read_region((300, 300), 0, (64, 64))),
                                      np.asarray(reference.read_region((300, 300), 0, (64, 64))))


def test_open_downloaded_refuses_files_that_are_no_slide(tmp_path: Path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("not a slide")
    with pytest.raises(NotSlideFileError, match="notes.txt: not a format OpenSlide knows"):
        open_downloaded([note])
    with pytest.raises(NotSlideFileError, match="no files"):
        open_downloaded([])


def iterate(slide: Any, *args: Any, stop: int | None = None, **options: Any) -> list[tuple[tuple[int, int], Any]]:
    """``slide.iter_regions(...)`` as a list on either client (the trio one through its portal);
    ``stop``: leave the loop after that many regions, as a caller that breaks out would."""
    if isinstance(slide, PortalSlide):
        async def collect() -> list[tuple[tuple[int, int], Any]]:
            found = []
            async with slide._slide.iter_regions(*args, **options) as regions:
                async for item in regions:
                    found.append(item)
                    if len(found) == stop:
                        break
            return found

        return slide._portal.run(collect)  # type: ignore[no-any-return]
    found = []
    with slide.iter_regions(*args, **options) as regions:
        for item in regions:
            found.append(item)
            if len(found) == stop:
                break
    return found


def test_iter_regions_yields_what_read_region_mpp_reads(open_remote: Callable[..., Any], demo: MockSectraServer) -> None:
    """The whole-slide helper: every region, row by row, the same pixels as one read_region_mpp each,
    however small the prefetch windows; a caller that stops early leaves nothing running."""
    slide = open_remote("slide-001", cache_bytes=0)  # no client cache: every window fetches its own tiles
    reference = open_remote("slide-001")
    regions = iterate(slide, 1.0, (128, 128), as_array=True, prefetch=6)  # level 2 (600x450): 5x4 regions
    assert [corner for corner, _ in regions] == [(x, y) for y in range(0, 1800, 512) for x in range(0, 2400, 512)]
    for corner, pixels in regions:
        assert np.array_equal(pixels, reference.read_region_mpp(corner, 1.0, (128, 128), as_array=True)), corner
    edge = dict(regions)[(2048, 1536)]  # past the slide's corner: transparent there, as read_region
    assert edge[0, 0, 3] == 255 and edge[-1, -1, 3] == 0
    # A box at a resolution that needs resizing (0.75 µm/px from level 1), as images.
    boxed = iterate(slide, 0.75, (100, 100), box=(600, 300, 900, 300))
    assert [corner for corner, _ in boxed] == [(600, 300), (900, 300), (1200, 300)]
    for corner, image in boxed:
        assert image.mode == "RGBA" and image.size == (100, 100)
        assert np.array_equal(np.asarray(image), reference.read_region_mpp(corner, 0.75, (100, 100), as_array=True))
    served = demo.tile_cache.hits + demo.tile_cache.misses
    assert len(iterate(slide, 0.25, (128, 128), prefetch=4, stop=2)) == 2  # level 0: 80 tiles, 285 regions
    asked = demo.tile_cache.hits + demo.tile_cache.misses - served
    assert 0 < asked <= 2 * 4  # two windows at most (the one read and the one ahead), not the slide's 80
    with pytest.raises(ValidationError, match="positive"):
        iterate(slide, -1.0)


def test_a_failing_tile_fails_the_read_as_itself(open_remote: Callable[..., Any], demo: MockSectraServer) -> None:
    """One tile's error (here a 404) stops the read and comes out as that error, not as an
    exception group; a tile that is no image is a DecodeError naming the tile. Both clients."""
    slide = open_remote("slide-001", cache_bytes=0)
    demo.faults.add("status", "/images/slide-001_files/*/1_1.jpg", status=404, times=None)
    with pytest.raises(NotFoundError):
        slide.read_region((0, 0), 0, (720, 720))  # 9 tiles, one of them refused
    with pytest.raises(NotFoundError):
        iterate(slide, 0.25, (240, 240), prefetch=4)
    demo.faults.clear()
    demo.faults.add("invalid_json", "/images/slide-001_files/*/0_1.jpg", times=None)
    with pytest.raises(DecodeError, match=r"tile \(\d+, 0, 1\) is not an image Pillow can decode"):
        slide.read_region((0, 0), 0, (480, 480))
    demo.faults.clear()
    assert slide.read_region((0, 0), 0, (720, 720)).getextrema()[3] == (255, 255)  # the slide still reads


def test_leaving_iter_regions_early_leaves_no_thread_behind(demo: MockSectraServer) -> None:
    """The blocking client's fetch-ahead helper thread and tile workers end with the block."""
    before = {t.ident for t in threading.enumerate()}
    with SectraClient(demo.url, TOKEN) as client, client.open_slide("slide-001", cache_bytes=0) as slide:
        with slide.iter_regions(0.25, (128, 128), prefetch=4) as regions:
            next(iter(regions))
        left = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("sectra-")]
        assert left == []
        with pytest.raises(NotFoundError):  # and a failure inside the block ends them too
            demo.faults.add("status", "/images/slide-001_files/*/2_0.jpg", status=404)
            with slide.iter_regions(0.25, (128, 128), prefetch=4) as regions:
                for _ in regions:
                    pass
        assert [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("sectra-")] == []


async def test_trio_reads_are_cancellable(demo: MockSectraServer) -> None:
    """A cancelled read_region / iter_regions ends its requests with it (nothing outlives the
    cancel scope), and the slide reads normally afterwards."""
    async with AsyncSectraClient(demo.url, TOKEN) as client:
        slide = await client.open_slide("slide-001", cache_bytes=0)
        demo.faults.add("latency", "/images/slide-001_files/*", seconds=30, times=None)
        with trio.move_on_after(0.5) as scope:
            await slide.read_region((0, 0), 0, (720, 720))
        assert scope.cancelled_caught
        with trio.move_on_after(0.5) as scope:
            async with slide.iter_regions(0.25, (128, 128), prefetch=4) as regions:
                async for _ in regions:
                    pass
        assert scope.cancelled_caught
        demo.faults.clear()
        region = await slide.read_region((0, 0), 0, (720, 720), as_array=True)
        assert region.shape == (720, 720, 4) and (region[..., 3] == 255).all()
