"""The differential matrix (issue 24): slides written by other tools, served by the mock, read by
both clients, compared with OpenSlide reading the same files locally.

For each slide of :data:`~tests.differential.slide_factory.MATRIX` (tifffile generic TIFF and
SVS with a label, wsidicomizer DICOM WSI; odd sizes; pyramids by 2 and by 4; with and without a
resolution): the ``/slides/{id}/info`` fields against ``openslide.OpenSlide``, every field
Sectra's clients require present, every tile the size the advertised pyramid gives it (spec §6),
and every level read whole with ``read_region`` (sync and trio clients, JPEG and PNG tiles)
against local OpenSlide within JPEG noise, over the whole level and over its last rows and
columns alone: no transparent pixel inside the slide.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import trio
import urllib3
from PIL import Image

from sectra_client import SectraClient
from sectra_core.geometry import Pyramid
from sectra_mock import MockSectraServer
from sectra_mock.slides import DEFAULT_MPP
from sectra_transports.trio import AsyncSectraClient
from tests.conftest import TOKEN
from tests.differential.slide_factory import MATRIX, MatrixSlide

#: The fields every Sectra client model requires in ``/slides/{id}/info`` (spec §5.4, "req" in
#: the contrib/community column): a validation error there without any of them.
REQUIRED = ("id", "isStreamable", "imageSize", "tileSize", "micronsPerPixel", "focalPlanes", "opticalPaths",
            "storedTileFormat", "availableTileFormats", "fileFormat", "staining", "block")
#: Mean absolute difference per channel from local OpenSlide. PNG tiles: the resampling alone
#: (DeepZoom reads each tile's region at whole pixels of the stored level, so a level that is not
#: the stored one shifts by up to half a pixel per tile: measured up to 4.3 on these bands); JPEG
#: tiles add the mock's quality-75 noise (measured up to 5.1).
JPEG_NOISE = {"jpg": 6.5, "png": 5.0}
#: The same over the last two rows and columns alone (measured up to 4.6 and 4.9, the latter a
#: one-pixel edge tile scaled from the full level where the reference interpolates the level
#: below): an edge line left out, painted black or a tile pasted a pixel off costs tens.
EDGE_NOISE = {"jpg": 6.5, "png": 6.5}

IDS = [m.name for m in MATRIX]


def local(files: list[Path]) -> Any:
    return openslide.OpenSlide(str(files[0]))


def reference(slide: Any, downsample: int, size: tuple[int, int]) -> Any:
    """What a level of ``downsample`` and ``size`` shows, from local OpenSlide: the stored level
    DeepZoom reads for it, read whole and resampled onto the DZI level's size."""
    level = slide.get_best_level_for_downsample(downsample)
    region = slide.read_region((0, 0), level, slide.level_dimensions[level])
    assert (np.asarray(region)[..., 3] == 255).all()  # the reference itself is opaque
    region = region.convert("RGB")
    if region.size != size:
        region = region.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(region, dtype=np.int16)


@pytest.mark.parametrize("slide", MATRIX, ids=IDS)
def test_info_fields_match_openslide(matrix_mock: MockSectraServer, matrix_files: dict[str, list[Path]], slide: MatrixSlide) -> None:
    r = urllib3.request("GET", f"{matrix_mock.url}/slides/{slide.name}/info", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status == 200
    raw = r.json()
    assert [f for f in REQUIRED if raw.get(f) is None] == []
    ref = local(matrix_files[slide.name])
    assert (raw["imageSize"]["width"], raw["imageSize"]["height"]) == ref.dimensions == (slide.width, slide.height)
    file_mpp = ref.properties.get("openslide.mpp-x")
    if slide.mpp is None:
        assert file_mpp is None and raw["micronsPerPixel"] == DEFAULT_MPP
        name = matrix_files[slide.name][0].name
        assert any(name in w and "micronsPerPixel is reported as 0.25" in w for w in matrix_mock.warnings)
    else:
        assert raw["micronsPerPixel"] == pytest.approx(float(file_mpp)) == pytest.approx(slide.mpp)
    assert raw["storedTileFormat"]["mimeType"] == slide.expected_mime
    assert raw["fileFormat"]["mimeType"] == ("application/dicom" if slide.kind == "dicom" else "image/tiff")
    label = urllib3.request("GET", f"{matrix_mock.url}/slides/{slide.name}/label", headers={"Authorization": f"Bearer {TOKEN}"})
    assert label.status == (200 if "label" in list(ref.associated_images) else 204)
    assert ("label" in list(ref.associated_images)) == slide.label
    if slide.label:
        got = Image.open(io.BytesIO(label.data))
        assert got.size == ref.associated_images["label"].size


@pytest.mark.parametrize("slide", MATRIX, ids=IDS)
def test_tiles_have_the_size_the_pyramid_gives_them(matrix_mock: MockSectraServer, slide: MatrixSlide) -> None:
    """Every edge tile of every level (where a size can go wrong) and a corner tile, both formats."""
    with SectraClient(matrix_mock.url, TOKEN) as client:
        pyramid = Pyramid.from_image_info(client.get_image_metadata(slide.name))
        checked = 0
        for level in range(pyramid.max_level + 1):
            cols, rows = pyramid.grid(level)
            keys = {(0, 0)} | {(cols - 1, r) for r in range(rows)} | {(c, rows - 1) for c in range(cols)}
            for col, row in sorted(keys):
                for ext in ("jpg", "png"):
                    data = client.get_tile(slide.name, level=level, col=col, row=row, ext=ext)
                    assert Image.open(io.BytesIO(data)).size == pyramid.tile_box(level, col, row)[2:], (level, col, row, ext)
                    checked += 1
        assert checked > 4 * pyramid.max_level


def _levels_sync(url: str, name: str, ext: str, levels: range | None = None) -> list[Any]:
    """Every level (or ``levels``) of a remote slide read whole with the blocking client: RGBA arrays."""
    with SectraClient(url, TOKEN) as client, client.open_slide(name, ext=ext) as slide:
        wanted = levels or range(slide.level_count)
        return [np.asarray(slide.read_region((0, 0), k, slide.level_dimensions[k])) for k in wanted]


def _levels_trio(url: str, name: str, ext: str, levels: range | None = None) -> list[Any]:
    """The same through the trio client."""
    async def main() -> list[Any]:
        async with AsyncSectraClient(url, TOKEN) as client:
            slide: Any = await client.open_slide(name, ext=ext)
            wanted = levels or range(slide.level_count)
            return [np.asarray(await slide.read_region((0, 0), k, slide.level_dimensions[k])) for k in wanted]
    return trio.run(main)


@pytest.mark.parametrize("ext", ["jpg", "png"])
@pytest.mark.parametrize("client_name", ["sync", "trio"])
@pytest.mark.parametrize("slide", MATRIX, ids=IDS)
def test_whole_levels_match_local_openslide(
    matrix_mock: MockSectraServer, matrix_files: dict[str, list[Path]], slide: MatrixSlide, client_name: str, ext: str,
) -> None:
    levels = (_levels_sync if client_name == "sync" else _levels_trio)(matrix_mock.url, slide.name, ext)
    ref = local(matrix_files[slide.name])
    for k, region in enumerate(levels):
        height, width = region.shape[:2]
        where = f"{slide.name} level {k} ({width}x{height}) {client_name} {ext}"
        assert int((region[..., 3] != 255).sum()) == 0, f"{where}: transparent pixels inside the slide"
        expected = reference(ref, 2**k, (width, height))
        diff = np.abs(region[..., :3].astype(np.int16) - expected)
        assert diff.mean() < JPEG_NOISE[ext], f"{where}: {diff.mean():.2f}"
        edges = np.concatenate([diff[-2:].reshape(-1, 3), diff[:, -2:].reshape(-1, 3)])
        assert edges.mean() < EDGE_NOISE[ext], f"{where}: edges {edges.mean():.2f}"


def test_default_mpp_on_the_cli_and_in_python(tmp_path: Path, matrix_files: dict[str, list[Path]]) -> None:
    """``sectra mock serve --default-mpp`` and ``add_slide_files(..., mpp=)``: the value reported for a
    file without a resolution, a warning naming it at start; a file's own resolution wins."""
    import shutil
    import socket
    import threading
    import time

    from sectra_client.cli import main

    bare = next(m for m in MATRIX if m.mpp is None and m.kind == "tiff")
    calibrated = next(m for m in MATRIX if m.mpp is not None and m.kind == "tiff")
    for slide in (bare, calibrated):
        shutil.copy(matrix_files[slide.name][0], tmp_path / matrix_files[slide.name][0].name)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop, out = threading.Event(), io.StringIO()
    argv = ["mock", "serve", "--port", str(port), "--slides-dir", str(tmp_path), "--token", TOKEN, "--default-mpp", "0.5"]
    thread = threading.Thread(target=main, args=(argv,), kwargs={"out": out, "stop_event": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while "mock Sectra server" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        with SectraClient(f"http://127.0.0.1:{port}", TOKEN) as client:
            assert client.get_image_metadata(bare.name).microns_per_pixel == 0.5
            assert client.get_image_metadata(calibrated.name).microns_per_pixel == pytest.approx(calibrated.mpp)
    finally:
        stop.set()
        thread.join(15)
    text = out.getvalue()
    assert f"warning: slide '{bare.name}': {bare.name}.tiff has no microns-per-pixel" in text
    assert f"{bare.name}: 1 file(s), image/tiff {bare.width}x{bare.height} px, 0.5 um/px" in text
    assert "warning" not in text.split(f"{calibrated.name}:")[1].split("\n")[0]
    for wrong in ("0", "-1", "nan", "inf", "fast"):
        with pytest.raises(SystemExit) as refused:
            main(["mock", "serve", "--default-mpp", wrong], out=io.StringIO())
        assert refused.value.code == 2
    server = MockSectraServer(token=TOKEN, demo_slides=False)
    assert server.add_slide_files("x", matrix_files[bare.name], mpp=0.123).microns_per_pixel == 0.123
    assert server.add_slide_files("y", matrix_files[bare.name]).microns_per_pixel == DEFAULT_MPP
    with pytest.raises(ValueError, match="mpp must be a positive number"):
        server.add_slide_files("z", matrix_files[bare.name], mpp=-1.0)
