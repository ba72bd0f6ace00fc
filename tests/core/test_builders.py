"""Result builders and validation: wrong geometry fails where it is written, not in the viewer."""

from __future__ import annotations

import math

import pytest

from sectra_core import schemas as s
from sectra_core.app.builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid

LANDSCAPE = Pyramid(width=4000, height=3000, tile_size=256)  # max_y = 0.75


def test_primitives_group_by_style_and_encode_canonically() -> None:
    green = s.Style(stroke_style="#00FF00")
    b = PrimitiveBuilder(LANDSCAPE)
    b.polygon([(0, 0), (0.5, 0), (0.5, 0.75)], style=green).polyline([(0.1, 0.1), (0.2, 0.2)], style=green)
    b.arc((0.5, 0.5), 0.01).label((0.1, 0.7), "Tumour 12 %")
    result = b.build("slide", "Tumour 12 %", display_properties={"Cells": 12}, application_version="1.0")
    items = result.data.result.content  # type: ignore[union-attr]
    assert len(items) == 2 and items[0].style == green and len(items[0].polygons) == 1 and len(items[0].polylines) == 1
    assert items[1].style is None and items[1].arcs[0].radius == 0.01 and len(b) == 4
    wire = s.encode(result)
    assert b'"content":[' in wire and b'"applicationVersion":"1.0"' in wire and b"null" not in wire


def test_pixels_at_any_level_become_width_normalised() -> None:
    b = PrimitiveBuilder(LANDSCAPE)
    level = LANDSCAPE.max_level - 2  # a quarter of full size: 1000 x 750 px
    b.polygon_px([(0, 0), (1000, 0), (1000, 750)], level=level)
    pts = b.content().content[0].polygons[0].points  # type: ignore[union-attr]
    assert (pts[1].x, pts[2].y) == (pytest.approx(1.0), pytest.approx(0.75))
    b.label_px(500, 375, "centre", level=level)
    loc = b.content().content[0].labels[0].location  # type: ignore[union-attr]
    assert (loc.x, loc.y) == (pytest.approx(0.5), pytest.approx(0.375))


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: b.polygon([(0, 0), (1, 0)]), "at least 3 points"),
        (lambda b: b.polyline([(0, 0)]), "at least 2 points"),
        (lambda b: b.rectangle(0, 0, 1, 1), "outside the slide"),  # (0,0)-(1,1) overshoots: y ends at 0.75
        (lambda b: b.polygon([(0, 0), (math.nan, 0), (1, 0.5)]), "finite"),
        (lambda b: b.polygon([(0, 0), "xy", (1, 0.5)]), "a point is"),
        (lambda b: b.arc((0.5, 0.5), 0), "radius"),
        (lambda b: b.label((0.1, 0.1), "  "), "non-empty"),
        (lambda b: b.polygon([(0, 0), (1, 0), (1, 0.5)], style=s.Style(stroke_style="not a colour!")), "CSS colour"),
    ],
)
def test_mistakes_fail_where_they_are_made(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError, match=message):
        call(PrimitiveBuilder(LANDSCAPE))


def test_pixels_need_a_pyramid() -> None:
    with pytest.raises(ValidationError, match="pyramid"):
        PrimitiveBuilder().polygon_px([(0, 0), (1, 0), (1, 1)])


def test_patch_gallery() -> None:
    g = PatchGalleryBuilder(["A", "B", "C"], pyramid=LANDSCAPE, patch_size=128, magnification=20, description="Sort")
    g.region([(0.1, 0.1), (0.3, 0.1), (0.3, 0.3)]).patch("B", (0.2, 0.2), 0.9).patch(2, (0.21, 0.2))
    g.patch_px("A", 800, 800).action("recount", "Recount", "count again").status("allowVerify", False, "not yet")
    result = g.build("slide", "3 patches")
    content = result.data.result.content  # type: ignore[union-attr]
    assert [p.tag for p in content.patches] == [1, 2, 0] and content.patch_size == 128
    assert content.statuses["allowVerify"].value is False and content.actions[0].id == "recount"
    assert s.decode(s.decoder(s.Result), s.encode(result), "result") == result
    with pytest.raises(ValidationError, match="unknown tag"):
        g.patch("D", (0.2, 0.2))
    with pytest.raises(ValidationError, match="outside 0..2"):
        g.patch(3, (0.2, 0.2))
    with pytest.raises(ValidationError, match="unique"):
        g.action("recount", "again")
    with pytest.raises(ValidationError, match="region"):
        PatchGalleryBuilder(["A"]).patch("A", (0.1, 0.1)).build("slide", "no region")
    with pytest.raises(ValidationError, match="unique"):
        PatchGalleryBuilder(["A", "A"])
    with pytest.raises(ValidationError, match="at least one tag"):
        PatchGalleryBuilder([])


def test_validate_result_names_the_json_path() -> None:
    bad = s.Result(slide_id="x", data=s.ResultData(result=s.PatchCollectionResult(content=s.PatchContent(
        polygons=[s.Polygon(points=[s.Point(x=0, y=0), s.Point(x=0.1, y=0), s.Point(x=0.1, y=0.1)])],
        tags=["A"], patches=[s.Patch(tag=4, position=s.Point(x=0.1, y=0.1))]))))
    with pytest.raises(ValidationError, match=r"data\.result\.content\.patches\[0\]\.tag: tag index 4"):
        validate_result(bad)
    tall = PrimitiveBuilder().polygon([(0, 0), (1, 0), (1, 1)]).build("x", "ok without a pyramid")
    with pytest.raises(ValidationError, match=r"content\[0\]\.polygons\[0\].*height/width = 0.7500"):
        validate_result(tall, max_y=0.75)
    with pytest.raises(ValidationError, match="slideId"):
        validate_result(s.Result(slide_id=""))


def test_edge_tiles_rounded_up_are_pulled_onto_the_slide() -> None:
    odd = Pyramid(width=1001, height=601, tile_size=256)  # level sizes round up past the edge
    level = odd.max_level - 3
    cols, rows = odd.grid(level)
    x, y, w, h = odd.tile_box(level, cols - 1, rows - 1)
    b = PrimitiveBuilder(odd).polygon_px([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], level=level)
    pts = b.content().content[0].polygons[0].points  # type: ignore[union-attr]
    assert max(p.x for p in pts) == 1.0 and max(p.y for p in pts) == pytest.approx(odd.max_y)
    with pytest.raises(ValidationError, match="outside"):  # more than one level pixel off is still wrong
        PrimitiveBuilder(odd).polygon_px([(0, 0), (x + w + 2, 0), (0, 10)], level=level)
