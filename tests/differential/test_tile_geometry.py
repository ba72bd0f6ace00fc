"""Exact tile geometry on both sides (issue 24), and damaged slide files.

The mock serves every tile at the size its pyramid states (spec §6); the remote slide places a
tile by that geometry whatever the server sends: a server that shrinks edge tiles as OpenSlide's
``DeepZoomGenerator.get_tile`` does, one whose level sizes round down (Sectra's dzidesc, a pixel
short at the right/bottom edge) or one a pixel long. Every level read whole shows no transparent
pixel inside the slide and equals local OpenSlide within JPEG noise, on both clients.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import trio
import urllib3
from PIL import Image

from sectra_client import SectraClient
from sectra_core.errors import DecodeError, ServerError
from sectra_core.geometry import Pyramid
from sectra_core.retry import NO_RETRY
from sectra_mock import MockSectraServer
from sectra_mock.slides import SlideImage
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN
from tests.differential.slide_factory import MATRIX, ensure
from tests.differential.test_matrix import _levels_sync, _levels_trio, local, reference

ODD = next(m for m in MATRIX if (m.width, m.height) == (3001, 2203))
SLIVER = next(m for m in MATRIX if (m.width, m.height) == (961, 481))
_exact = SlideImage._deepzoom_tile


def _deepzoom_get_tile(self: SlideImage, level: int, col: int, row: int) -> Any:
    """What the mock served before issue 24: DeepZoomGenerator.get_tile, some edge tiles short."""
    return self._dz.get_tile(level, (col, row))


def _edges(change: int) -> Callable[[SlideImage, int, int, int], Any]:
    """A server whose levels end ``change`` pixels later (negative: earlier) than the client's
    geometry: its right/bottom edge tiles hold the same pixels at the same scale, cut short or
    with a line of background added."""
    def tile(self: SlideImage, level: int, col: int, row: int) -> Any:
        image = _exact(self, level, col, row)
        cols, rows = self.level_grid(level) or (0, 0)
        w, h = image.size
        new = (max(1, w + change) if col == cols - 1 else w, max(1, h + change) if row == rows - 1 else h)
        if new == image.size:
            return image
        if change < 0:
            return image.crop((0, 0, *new))
        grown = Image.new("RGB", new, "#ffffff")
        grown.paste(image, (0, 0))
        return grown
    return tile


def _floor_size(self: SlideImage, level: int) -> tuple[int, int]:
    scale = 2 ** (self.level_count - 1 - level)
    return max(1, self.dimensions[0] // scale), max(1, self.dimensions[1] // scale)


def _floor_grid(self: SlideImage, level: int) -> tuple[int, int] | None:
    """Sectra's dzidesc rounding (spec §6): level sizes rounded down, so the grid may lose a column."""
    if not 0 <= level < self.level_count:
        return None
    width, height = _floor_size(self, level)
    return -(-width // self.tile_size), -(-height // self.tile_size)


def _floor_tile(self: SlideImage, level: int, col: int, row: int) -> Any:
    """The same pixels, cut where a level rounded down ends."""
    image = _exact(self, level, col, row)
    width, height = _floor_size(self, level)
    x, y = col * self.tile_size, row * self.tile_size
    return image.crop((0, 0, min(image.width, width - x), min(image.height, height - y)))


SERVERS: dict[str, Callable[..., Any]] = {
    "deepzoom-get-tile": _deepzoom_get_tile, "edges-a-pixel-short": _edges(-1), "edges-a-pixel-long": _edges(+1),
    "levels-rounded-down": _floor_tile,
}


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], MockSectraServer]]:
    servers: list[Any] = []

    def start(kind: str) -> MockSectraServer:
        if kind != "exact":
            monkeypatch.setattr(SlideImage, "_deepzoom_tile", SERVERS[kind])
        if kind == "levels-rounded-down":
            monkeypatch.setattr(SlideImage, "level_grid", _floor_grid)
        server = MockSectraServer(token=TOKEN, demo_slides=False)
        server.add_slide_files("odd", ensure(ODD))
        server.add_slide_files("sliver", ensure(SLIVER))
        servers.append(server.run(port=0))
        servers[-1].__enter__()
        return server

    yield start
    for running in servers:
        running.__exit__(None, None, None)


def test_the_mock_serves_every_tile_at_the_stated_size(serve: Callable[[str], MockSectraServer]) -> None:
    """Before issue 24 DeepZoom's get_tile made edge tiles of levels 9..11 a pixel narrow here."""
    server = serve("exact")
    with SectraClient(server.url, TOKEN) as client:
        pyramid = Pyramid.from_image_info(client.get_image_metadata("odd"))
        for level in range(pyramid.max_level + 1):
            cols, rows = pyramid.grid(level)
            for col, row in {(cols - 1, r) for r in range(rows)} | {(c, rows - 1) for c in range(cols)}:
                data = client.get_tile("odd", level=level, col=col, row=row, ext="png")
                assert Image.open(io.BytesIO(data)).size == pyramid.tile_box(level, col, row)[2:], (level, col, row)


@pytest.mark.parametrize("client_name", ["sync", "trio"])
@pytest.mark.parametrize("kind", ["exact", *SERVERS])
def test_no_transparency_inside_the_slide_whatever_the_server_rounds(
    serve: Callable[[str], MockSectraServer], kind: str, client_name: str,
) -> None:
    server = serve(kind)
    ref = local(ensure(ODD))
    # Levels 1-4 (the whole of each): where DeepZoom's rounding showed; level 0 is the matrix's.
    levels = (_levels_sync if client_name == "sync" else _levels_trio)(server.url, "odd", "png", range(1, 5))
    for k, region in zip(range(1, 5), levels):
        height, width = region.shape[:2]
        assert int((region[..., 3] != 255).sum()) == 0, f"{kind} level {k}: transparent pixels inside the slide"
        diff = np.abs(region[..., :3].astype(np.int16) - reference(ref, 2**k, (width, height)))
        edges = np.concatenate([diff[-2:].reshape(-1, 3), diff[:, -2:].reshape(-1, 3)])
        # Measured at most 5.1 and 5.9 (a short edge line repeated, a shrunk tile kept at its scale).
        assert diff.mean() < 6.0 and edges.mean() < 7.0, (kind, k, diff.mean(), edges.mean())


@pytest.mark.parametrize("client_name", ["sync", "trio"])
@pytest.mark.parametrize("kind", ["exact", "levels-rounded-down"])
def test_a_one_pixel_edge_tile_the_server_lacks_is_filled_from_its_neighbour(
    serve: Callable[[str], MockSectraServer], kind: str, client_name: str,
) -> None:
    """961x481: its levels 481x241 and 241x121 end a pixel past a tile; a server rounding down
    answers those one-pixel tiles 404. The neighbour's last line fills them: every level opaque,
    within noise of local OpenSlide."""
    server = serve(kind)
    if kind != "exact":  # the server really lacks them
        r = urllib3.request("GET", f"{server.url}/images/sliver_files/9/2_0.png", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 404
    ref = local(ensure(SLIVER))
    levels = (_levels_sync if client_name == "sync" else _levels_trio)(server.url, "sliver", "png")
    for k, region in enumerate(levels):
        height, width = region.shape[:2]
        assert int((region[..., 3] != 255).sum()) == 0, f"{kind} level {k}: transparent pixels inside the slide"
        diff = np.abs(region[..., :3].astype(np.int16) - reference(ref, 2**k, (width, height)))
        edges = np.concatenate([diff[-2:].reshape(-1, 3), diff[:, -2:].reshape(-1, 3)])
        assert diff.mean() < 6.0 and edges.mean() < 9.0, (kind, k, diff.mean(), edges.mean())


def test_a_tile_of_another_pyramid_is_a_decode_error(serve: Callable[[str], MockSectraServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """More than a pixel or two off is not rounding: a DecodeError naming the tile and both sizes."""
    server = serve("exact")
    monkeypatch.setattr(SlideImage, "_deepzoom_tile", _edges(-10))
    with SectraClient(server.url, TOKEN) as client, client.open_slide("odd", ext="png") as slide:
        with pytest.raises(DecodeError, match=r"where the slide's geometry \(spec §6\) puts a \d+x\d+ tile"):
            slide.read_region((0, 0), 0, slide.dimensions)


def test_a_damaged_tile_is_a_json_error_and_one_warning_naming_the_file(tmp_path: Path) -> None:
    """A tile OpenSlide cannot cut: JSON 500 (no traceback page), the client's ServerError, one
    warning naming the file; the rest of the mock goes on."""
    damaged = tmp_path / "damaged.tiff"
    shutil.copy(ensure(ODD)[0], damaged)
    with tifffile.TiffFile(damaged) as tif:
        offset, count = tif.pages[0].dataoffsets[0], tif.pages[0].databytecounts[0]
    with open(damaged, "r+b") as f:
        f.seek(offset)
        f.write(b"\x00" * count)
    server = MockSectraServer(token=TOKEN, demo_slides=True)
    server.add_slide_files("damaged", [damaged])
    with server.run(port=0):
        top = Pyramid.from_image_info(server.image_info("damaged")).max_level
        for _ in range(2):
            r = urllib3.request("GET", f"{server.url}/images/damaged_files/{top}/0_0.jpg",
                                headers={"Authorization": f"Bearer {TOKEN}"}, retries=False)
            assert r.status == 500 and r.headers["Content-Type"] == "application/json"
            assert "cannot be cut" in r.json()["error"] and "Traceback" not in r.data.decode()
        told = [w for w in server.warnings if "damaged.tiff" in w and "cannot be cut" in w]
        assert len(told) == 1, server.warnings
        with SectraClient(server.url, TOKEN, retry=NO_RETRY) as client:
            with pytest.raises(ServerError):
                client.get_tile("damaged", level=top, col=0, row=0)
            assert client.get_tile("slide-001", level=10, col=0, row=0)[:2] == b"\xff\xd8"


def test_a_file_openslide_cannot_read_is_named_with_the_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.svs"
    broken.write_bytes(ensure(ODD)[0].read_bytes()[:4096])  # a TIFF header, its directories cut off
    server = MockSectraServer(token=TOKEN, demo_slides=False)
    info = server.add_slide_files("broken", [broken])
    assert info.station_name == "SYNTHETIC"
    assert any("broken.svs" in w and "not a slide OpenSlide can read (" in w for w in server.warnings), server.warnings


def test_anything_escaping_a_handler_is_a_json_error(serve: Callable[[str], MockSectraServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Quart's HTML error page with a traceback: a JSON 500 naming the exception's type only."""
    server = serve("exact")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret /home/pat/doe.svs")

    monkeypatch.setattr(SlideImage, "tile", broken)
    r = urllib3.request("GET", f"{server.url}/images/odd_files/12/0_0.jpg", headers={"Authorization": f"Bearer {TOKEN}"},
                        retries=False)
    assert (r.status, r.headers["Content-Type"]) == (500, "application/json")
    assert r.json() == {"error": "the mock failed to answer (RuntimeError); its log says where"}


@pytest.mark.parametrize("client_name", ["sync", "trio"])
def test_a_stand_in_tile_of_another_size_is_a_decode_error(
    serve: Callable[[str], MockSectraServer], monkeypatch: pytest.MonkeyPatch, client_name: str,
) -> None:
    """The neighbour fetched for a missing one-pixel edge tile is a tile from the server like any
    other: its size is checked against the geometry before it is decoded (a hostile server's
    small PNG of 6000x6000 pixels is not decoded into 100 MB), a DecodeError as for any tile."""
    server = serve("levels-rounded-down")

    def hostile(self: SlideImage, level: int, col: int, row: int) -> Any:
        if (level, col, row) == (9, 1, 0):  # the stand-in for the missing sliver (9, 2, 0)
            return Image.new("RGB", (6000, 6000), "#ffffff")
        return _floor_tile(self, level, col, row)

    monkeypatch.setattr(SlideImage, "_deepzoom_tile", hostile)
    location, size = (480 * 2, 0), (1, 200)  # level 1 (481 wide): the last column, the sliver tile only
    if client_name == "sync":
        with SectraClient(server.url, TOKEN) as client, client.open_slide("sliver", ext="png") as slide:
            with pytest.raises(DecodeError, match="6000x6000"):
                slide.read_region(location, 1, size)
    else:
        async def run() -> None:
            async with AsyncSectraClient(server.url, TOKEN) as client:
                slide: Any = await client.open_slide("sliver", ext="png")
                with pytest.raises(DecodeError, match="6000x6000"):
                    await slide.read_region(location, 1, size)

        trio.run(run)
