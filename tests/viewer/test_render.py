"""``render_results``: each primitive's stroke colour where its geometry says (``y`` multiplied by
the image WIDTH, spec §2.4), at two levels, on the blocking and the trio client; the picture is
kept for a person to look at."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sectra_core import schemas as s
from sectra_core.drawing import View, parse_colour, result_shapes
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid
from sectra_mock.server import MockSectraServer
from sectra_transports.render import arender_results, render_results, render_view
from sectra_transports.trio import AsyncSectraClient
from sectra_transports.urllib3 import SectraClient

SLIDE = "slide-001"  # 2400 x 1800 at 0.25 µm/px


@pytest.fixture(scope="module")
def mock() -> Iterator[MockSectraServer]:
    server = MockSectraServer()
    with server.run():
        yield server


@pytest.fixture(scope="module")
def slide(mock: MockSectraServer) -> Iterator[Any]:
    with SectraClient(url=mock.url, token=mock.token) as client, client.open_slide(SLIDE) as opened:
        yield opened


def P(x: float, y: float, width: int = 2400) -> s.Point:
    """A level-0 pixel position as Sectra stores it: both axes divided by the WIDTH."""
    return s.Point(x=x / width, y=y / width)


def every_kind() -> s.Result:
    items = [
        s.PrimitiveItem(style=s.Style(stroke_style="#ff0000", size=4),
                        polygons=[s.Polygon(points=[P(200, 1200), P(800, 1200), P(800, 1600), P(200, 1600)])]),
        s.PrimitiveItem(style=s.Style(stroke_style="#0000ff", size=4), polylines=[s.Polyline(points=[P(1000, 1300), P(1600, 1300)])]),
        s.PrimitiveItem(style=s.Style(stroke_style="#00ff00", size=4),
                        arcs=[s.Arc(center=P(1800, 400), radius=200 / 2400, start_angle=0.0, end_angle=math.pi)]),
        s.PrimitiveItem(style=s.Style(stroke_style="#ff00ff"), labels=[s.Label(location=P(300, 300), label="MMMM")]),
        s.PrimitiveItem(style=s.Style(stroke_style="#000000", fill_style="rgba(255, 255, 0, 1)", size=2),
                        polygons=[s.Polygon(points=[P(1900, 1500), P(2200, 1500), P(2200, 1700), P(1900, 1700)])]),
    ]
    return s.Result(slide_id=SLIDE, display_result="every kind",
                    data=s.ResultData(result=s.PrimitiveResult(content=items)))


def near(image: Any, x: float, y: float, colour: tuple[int, int, int], radius: int = 2, tol: int = 40) -> bool:
    """Whether some pixel within ``radius`` of (x, y) has ``colour``."""
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            px, py = round(x) + dx, round(y) + dy
            if 0 <= px < image.width and 0 <= py < image.height:
                got = image.getpixel((px, py))[:3]
                if all(abs(a - b) <= tol for a, b in zip(got, colour)):
                    return True
    return False


@pytest.mark.parametrize("level", [0, 1])
def test_each_primitive_drawn_in_its_colour_where_it_belongs(slide: Any, level: int, artifacts: Path) -> None:
    view = render_view(slide, every_kind(), level=level)
    image = view.image
    k = 2 ** -level
    assert image.size == (math.ceil(2400 * k), math.ceil(1800 * k))
    red, blue, green, magenta, yellow = (255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (255, 255, 0)
    # Polygon edges (y was stored divided by the width: 1200/2400 = 0.5, drawn back at 1200).
    assert near(image, 500 * k, 1200 * k, red) and near(image, 200 * k, 1400 * k, red)
    assert not near(image, 500 * k, 1400 * k, red, radius=0)  # not filled
    assert not near(image, 500 * k, 1200 * 0.75 * k, red)  # where y * height / width would put it
    assert near(image, 1300 * k, 1300 * k, blue) and not near(image, 1700 * k, 1300 * k, blue)
    # Half arc from 0 to pi, clockwise on screen: through the bottom point, not the top one.
    assert near(image, 1800 * k, 600 * k, green) and near(image, 2000 * k, 400 * k, green)
    assert not near(image, 1800 * k, 200 * k, green)
    # The label's text starts at its upper-left corner.
    assert any(near(image, (300 + dx) * k, 300 * k + dy, magenta, radius=0, tol=90) for dx in range(0, 60, 2) for dy in range(2, 14))
    assert not near(image, 300 * k - 20, 300 * k - 20, magenta, radius=3, tol=90)
    # Filled: its inside is the fill colour.
    assert near(image, 2050 * k, 1600 * k, yellow, radius=0)
    if level == 0:
        view.save(artifacts / "render-slide-001.png")
        assert view._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
        assert image._repr_png_().startswith(b"\x89PNG")  # a plain PIL image shows in Jupyter too


def test_a_region_at_a_level_keeps_the_geometry(slide: Any) -> None:
    # A region of the slide's lower left at level 1: the polygon's left edge at x=200 lies
    # (200-100)/2 = 50 pixels into it, its top edge at y=1200 (1200-1000)/2 = 100 pixels down.
    image = render_results(slide, [every_kind()], level=1, region=(100, 1000, 800, 700))
    assert image.size == (400, 350)
    assert near(image, 50, 200, (255, 0, 0)) and near(image, 200, 100, (255, 0, 0))
    assert not near(image, 200, 200, (255, 0, 0))


def test_tissue_is_under_the_shapes(slide: Any) -> None:
    import numpy as np

    empty = np.asarray(render_results(slide, [], level=2), dtype=np.int32)
    r, g, b = empty[..., 0], empty[..., 1], empty[..., 2]
    assert ((r > 120) & (b > 100) & (g < r - 40)).mean() > 0.2  # the demo slide's H&E pink


def test_mpp_and_bad_arguments(slide: Any) -> None:
    image = render_results(slide, every_kind(), mpp=1.0)  # 0.25 µm/px slide: a quarter of the size
    assert image.size == (600, 450)
    with pytest.raises(ValidationError, match="not both"):
        render_results(slide, every_kind(), level=1, mpp=1.0)
    with pytest.raises(ValidationError, match="not inside"):
        render_results(slide, every_kind(), region=(2000, 0, 1000, 10))
    with pytest.raises(ValidationError, match="outside"):
        render_results(slide, every_kind(), level=99)
    with pytest.raises(ValidationError, match="Result"):
        render_results(slide, ["not a result"])  # type: ignore[list-item]


async def test_trio_client_renders_the_same(mock: MockSectraServer, slide: Any) -> None:
    async with AsyncSectraClient(mock.url, mock.token) as client:
        async with await client.open_slide(SLIDE) as remote:
            got = await arender_results(remote, every_kind(), level=2)
    assert got.tobytes() == render_results(slide, every_kind(), level=2).tobytes()


def test_y_is_multiplied_by_the_width_in_the_shared_geometry() -> None:
    pyramid = Pyramid(2400, 1800, 240, 0.25)
    shapes = result_shapes(every_kind(), pyramid)
    assert shapes[0].points[0] == pytest.approx((200, 1200))
    assert View.of(pyramid, downsample=2).to_view(200, 1200) == (100, 600)
    gallery = s.Result(slide_id=SLIDE, data=s.ResultData(result=s.PatchCollectionResult(content=s.PatchContent(
        patches=[s.Patch(tag=0, position=P(1200, 900))], tags=["A"], patch_size=64, magnification=10.0))))
    patch = result_shapes(gallery, pyramid)[0]
    # 64 px at 10x on a 0.25 µm/px (40x) scan: 256 level-0 pixels, centred on the position.
    assert patch.kind == "patch" and patch.bounds() == pytest.approx((1072, 772, 1328, 1028))


@pytest.mark.parametrize(("css", "rgba"), [
    ("#FFA500", (255, 165, 0, 255)), ("#f00", (255, 0, 0, 255)), ("#ff000080", (255, 0, 0, 128)),
    ("rgba(0, 0, 255, 0.5)", (0, 0, 255, 128)), ("rgb(10%, 0, 0)", (26, 0, 0, 255)), ("Orange", (255, 165, 0, 255)),
    ("nonsense", None), ("#12", None), (None, None),
])
def test_colours_read_as_a_browser_reads_them(css: str | None, rgba: tuple[int, ...] | None) -> None:
    assert parse_colour(css, None) == rgba
