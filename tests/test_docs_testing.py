"""The example from docs/testing.md, as a real test. A check below keeps the two identical."""

from __future__ import annotations

from pathlib import Path

# --- begin docs example ---
from examples.apps.tissue_box import handle_create
from sectra_mock import MockSectraServer


async def test_tissue_box_stores_one_result(sectra_mock: MockSectraServer) -> None:
    sectra_mock.add_slide(sectra_mock.image_info("slide-001"))  # or your own ImageInfo
    invocation = sectra_mock.build_create("my-app", "slide-001")  # callbackInfo points at the mock

    answer = await handle_create(invocation)

    stored = sectra_mock.get_results(app_id="my-app", slide_id="slide-001")
    assert [r.id for r in stored] == [answer.id]
    info = sectra_mock.image_info("slide-001")
    points = stored[0].data.result.content[0].polygons[0].points
    assert max(p.y for p in points) <= info.image_size.height / info.image_size.width
# --- end docs example ---


# --- begin real-slide example ---
import io

import numpy as np
from PIL import Image

from sectra_core import schemas as s
from sectra_core.geometry import Pyramid
from sectra_transports.trio import AsyncSectraClient


async def outline_tissue(invocation: s.CreateInvocation) -> s.ResultResponse:
    """A toy analysis: threshold the tissue in the tiles at ~1 um/px, outline its bounding box."""
    cb = invocation.callback_info
    async with AsyncSectraClient(cb.url, cb.token) as client:
        pyramid = Pyramid.from_image_info(await client.get_image_metadata(invocation.slide_id))
        level = pyramid.level_for_mpp(1.0)
        tiles = await client.fetch_tiles(invocation.slide_id, pyramid.tiles(level), concurrency=4)
        width, height = pyramid.level_size(level)
        tissue = np.zeros((height, width), dtype=bool)
        for (_level, col, row), data in tiles.items():
            grey = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
            x, y = col * pyramid.tile_size, row * pyramid.tile_size
            tissue[y : y + grey.shape[0], x : x + grey.shape[1]] = grey < 215  # darker than glass
        ys, xs = np.nonzero(tissue)
        box = [(xs.min(), ys.min()), (xs.max() + 1, ys.min()), (xs.max() + 1, ys.max() + 1), (xs.min(), ys.max() + 1)]
        outline = s.Polygon(points=[pyramid.to_sectra(float(x), float(y), level) for x, y in box])
        result = s.Result(
            slide_id=invocation.slide_id, display_result=f"Tissue {100 * tissue.mean():.1f} %",
            application_version="1.0",
            data=s.ResultData(result=s.PrimitiveResult(content=[s.PrimitiveItem(polygons=[outline])])),
        )
        return await client.create_results(invocation.application_id, result)


async def test_outline_tissue_on_a_demo_slide(sectra_mock: MockSectraServer) -> None:
    invocation = sectra_mock.build_create("tissue-app", "slide-001")  # a demo slide: real pixels

    answer = await outline_tissue(invocation)

    [stored] = sectra_mock.get_results(app_id="tissue-app", slide_id="slide-001")
    assert stored.id == answer.id
    percent = float(stored.display_result.split()[1])  # type: ignore[union-attr]
    assert 10 < percent < 90  # part tissue, part glass
    info = sectra_mock.image_info("slide-001")
    points = stored.data.result.content[0].polygons[0].points  # type: ignore[union-attr]
    assert all(0 <= p.x <= 1 and 0 <= p.y <= info.max_y for p in points)
# --- end real-slide example ---


async def test_real_slide_example_finds_what_openslide_sees(sectra_mock: MockSectraServer) -> None:
    """The toy analysis' tissue fraction through the mock equals the one straight from the file."""
    import openslide

    from sectra_mock.demo_slides import ensure_demo_slides

    slide = openslide.OpenSlide(str(ensure_demo_slides()["slide-001"][0]))
    grey = np.asarray(slide.get_thumbnail((600, 450)).convert("L"))  # the 1 um/px level: 600x450
    assert grey.shape == (450, 600)
    await outline_tissue(sectra_mock.build_create("tissue-app", "slide-001"))
    [stored] = sectra_mock.get_results(app_id="tissue-app", slide_id="slide-001")
    percent = float(stored.display_result.split()[1])  # type: ignore[union-attr]
    assert abs(percent - 100 * (grey < 215).mean()) < 1.0  # JPEG noise moves a few edge pixels only


def test_docs_show_this_exact_example() -> None:
    source = Path(__file__).read_text()
    docs = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    for name in ("docs example", "real-slide example"):
        example = source.split(f"# --- begin {name} ---\n")[1].split(f"# --- end {name} ---")[0]
        assert example.strip() in docs, name
