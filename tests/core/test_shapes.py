"""GeoJSON both ways (QuPath's conventions) and masks to polygons: round trips exact, outputs valid."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest
import shapely
from shapely.geometry import Polygon as ShapelyPolygon

from sectra_core import schemas as s
from sectra_core.app.builders import PatchGalleryBuilder, PrimitiveBuilder, validate_result
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid
from sectra_core.shapes import from_geojson, input_from_geojson, polygons_from_mask, to_geojson
from sectra_core.shapes.masks import mask_result

PYRAMID = Pyramid(2400, 1800, 240, 0.25)  # landscape: y runs to 0.75


def close(a: object, b: object) -> None:
    """Equal after a JSON round trip, numbers within float rounding."""
    ja, jb = msgspec.to_builtins(a), msgspec.to_builtins(b)

    def walk(x: object, y: object) -> None:
        if isinstance(x, float) or isinstance(y, float):
            assert x == pytest.approx(y, rel=1e-12, abs=1e-12)
        elif isinstance(x, dict):
            assert isinstance(y, dict) and x.keys() == y.keys()
            for k in x:
                walk(x[k], y[k])
        elif isinstance(x, list):
            assert isinstance(y, list) and len(x) == len(y)
            for u, v in zip(x, y):
                walk(u, v)
        else:
            assert x == y

    walk(ja, jb)


def primitives() -> s.Result:
    b = PrimitiveBuilder(PYRAMID)
    b.polygon([(0.1, 0.1), (0.2, 0.1), (0.2, 0.3)], style=s.Style(stroke_style="#FFA500", fill_style="rgba(255,0,0,0.2)", size=2))
    b.polygon([(0.3, 0.7), (0.31, 0.74), (0.29, 0.75)], style=s.Style(stroke_style="#FFA500", fill_style="rgba(255,0,0,0.2)", size=2))
    b.polyline([(0.3, 0.3), (0.4, 0.35), (0.45, 0.1)])
    b.arc((0.5, 0.5), 0.05, style=s.Style(stroke_style="#0f0"))
    b.arc((0.5, 0.5), 0.05, 0.25, 1.0, style=s.Style(stroke_style="#0f0"))
    b.label((0.6, 0.6), "Tumour 12 %", style=s.Style(stroke_style="red"))
    return b.build("slide-001", "Tumour 12 %", display_properties={"Count": 3, "Ratio": 0.5, "Note": "x"},
                   application_version="1.0.0", context={"run": 7})


def gallery() -> s.Result:
    g = PatchGalleryBuilder(["Tumour", "Stroma", "Other"], pyramid=PYRAMID, patch_size=96, magnification=20, description="Review")
    g.region([(0.2, 0.2), (0.4, 0.2), (0.4, 0.4), (0.2, 0.4)]).action("recount", "Recount", "count again").status("allowVerify", False, "no")
    for i in range(5):
        g.patch(i % 3, (0.25 + i / 100, 0.3), sort_key=i / 3)
    return g.build("slide-001", "5 patches", display_properties={"Tumour": 2})


@pytest.mark.parametrize("make", [primitives, gallery], ids=["primitives", "gallery"])
def test_results_round_trip_exactly(make: object) -> None:
    result = make()  # type: ignore[operator]
    collection = json.loads(json.dumps(to_geojson(result, PYRAMID)))  # through real JSON text
    back = from_geojson(collection, PYRAMID)
    close(back, result)
    close(to_geojson(back, PYRAMID), collection)  # and the GeoJSON side is stable too


def test_geojson_follows_qupath_and_uses_level0_pixels() -> None:
    collection = to_geojson(primitives(), PYRAMID)
    polygon, second, line, circle, arc, label = collection["features"]
    assert polygon["geometry"] == {"type": "Polygon", "coordinates": [[[240.0, 240.0], [480.0, 240.0], [480.0, 720.0], [240.0, 240.0]]]}
    assert second["geometry"]["coordinates"][0][2] == [696.0, 1800.0]  # y times the WIDTH (spec §2.4): the bottom edge
    assert polygon["properties"]["objectType"] == "annotation" and polygon["properties"]["color"] == [255, 165, 0]
    assert polygon["properties"]["measurements"] == {"Count": 3.0, "Ratio": 0.5}
    assert line["geometry"]["type"] == "LineString" and circle["geometry"]["type"] == "Polygon"
    assert len(circle["geometry"]["coordinates"][0]) == 65 and arc["geometry"]["type"] == "LineString"
    cx, cy = circle["geometry"]["coordinates"][0][16]
    assert math.hypot(cx - 1200, cy - 1200) == pytest.approx(120)
    assert label["geometry"] == {"type": "Point", "coordinates": [1440.0, 1440.0]} and label["properties"]["name"] == "Tumour 12 %"
    patches = to_geojson(gallery(), PYRAMID)["features"][1:]
    assert {f["properties"]["objectType"] for f in patches} == {"detection"}
    assert patches[1]["properties"]["classification"] == {"name": "Stroma"} and patches[1]["properties"]["measurements"]["sortKeyValue"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("inp", [
    s.TaggedPolygonInput(content=s.TaggedPolygonContent(
        polygon=s.Polygon(points=[s.Point(x=0.21, y=0.18), s.Point(x=0.27, y=0.18), s.Point(x=0.27, y=0.23)]), tags=["Tumor", "Stroma"], tag_index=1)),
    s.MultiAreaInput(content=s.MultiAreaContent(polygons=[
        s.Polygon(points=[s.Point(x=0.1, y=0.1), s.Point(x=0.2, y=0.1), s.Point(x=0.2, y=0.2)]),
        s.Polygon(points=[s.Point(x=0.5, y=0.5), s.Point(x=0.6, y=0.5), s.Point(x=0.6, y=0.6)])])),
], ids=["taggedPolygon", "multiArea"])
def test_invocation_input_round_trips(inp: object) -> None:
    collection = json.loads(json.dumps(to_geojson(inp, PYRAMID)))  # type: ignore[arg-type]
    if isinstance(inp, s.TaggedPolygonInput):
        assert collection["features"][0]["properties"]["classification"] == {"name": "Stroma"}
    close(input_from_geojson(collection, PYRAMID), inp)


def test_qupath_export_becomes_a_valid_result() -> None:
    """What QuPath writes: classes with colours, a polygon with a hole, a MultiPolygon, points."""
    square = [[100, 100], [900, 100], [900, 700], [100, 700], [100, 100]]
    hole = [[300, 300], [500, 300], [500, 500], [300, 300]]
    qupath = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "a1", "geometry": {"type": "Polygon", "coordinates": [square, hole]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [[[[1000, 100], [1100, 100], [1100, 200], [1000, 100]]],
                                                                                  [[[1200, 100], [1300, 100], [1300, 200], [1200, 100]]]]},
         "properties": {"objectType": "detection", "classification": {"name": "Stroma", "color": -16711936}}},  # packed ARGB green
        {"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": [[10, 10], [20, 2400 * 0.75]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
    ]}
    result = from_geojson(qupath, s.ImageInfo(id="slide-001", is_streamable=True, image_size=s.Size(width=2400, height=1800),
                                              tile_size=s.Size(width=240, height=240)), display_result="3 regions")
    validate_result(result, max_y=0.75)
    tumour, stroma = result.data.result.content
    assert tumour.style == s.Style(stroke_style="#c80000") and len(tumour.polygons) == 2 and len(tumour.labels) == 2
    assert tumour.polygons[0].points[0] == s.Point(x=100 / 2400, y=100 / 2400) and len(tumour.polygons[0].points) == 4
    assert [lb.label for lb in tumour.labels] == ["Tumor", "Tumor"] and tumour.labels[1].location.y == 0.75
    assert stroma.style == s.Style(stroke_style="#00ff00") and len(stroma.polygons) == 2
    assert result.slide_id == "slide-001"
    assert result.data.context == {"geojsonClasses": ["Tumor", "Stroma"], "polygonHoles": [[1], []]}  # the interior ring
    back = to_geojson(result, PYRAMID)["features"]
    assert back[0]["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}


@pytest.mark.parametrize(("collection", "message"), [
    ({"type": "Topology"}, "FeatureCollection or Feature"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature"}]}, r"features\[0\] is not a GeoJSON Feature"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "GeometryCollection", "coordinates": []}}]}, "no Sectra counterpart"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [3000, 0]]}}]}, "outside the slide"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}}]}, "at least 3 points"),
])
def test_bad_geojson_is_refused_clearly(collection: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        from_geojson(collection, PYRAMID, slide_id="s")


def test_from_geojson_needs_a_slide_id() -> None:
    with pytest.raises(ValidationError, match="slide_id"):
        from_geojson({"type": "FeatureCollection", "features": []}, PYRAMID)


def test_mask_with_a_hole_and_several_components() -> None:
    mask = np.zeros((100, 150), np.uint8)
    mask[10:60, 10:80] = 1
    mask[20:40, 20:40] = 0  # a hole
    mask[70:90, 100:140] = 1  # a second component
    found = polygons_from_mask(mask, 4.0, origin=(400, 0))
    outer = [p for p in found if not p.hole]
    holes = [p for p in found if p.hole]
    assert len(outer) == 2 and len(holes) == 1
    for p in found:
        assert ShapelyPolygon(p.points).is_valid
    big = max(outer, key=lambda p: p.area)
    xs, ys = zip(*big.points)
    assert (min(xs), max(xs), min(ys), max(ys)) == (400 + 10 * 4, 400 + 80 * 4, 10 * 4, 60 * 4)  # level-0 pixels, pixel edges
    hx, hy = zip(*holes[0].points)
    assert 400 + 19 * 4 <= min(hx) and max(hx) <= 400 + 41 * 4
    assert len(polygons_from_mask(mask, holes=False)) == 2


def test_label_mask_classes_point_budget_and_builder() -> None:
    yy, xx = np.mgrid[0:400, 0:400]
    mask = np.zeros((400, 400), np.int32)
    mask[(yy - 150) ** 2 + (xx - 150) ** 2 < 100**2] = 3  # a disc: many contour points
    mask[300:380, 300:390] = 5
    found = polygons_from_mask(mask, 2.0, max_points=24)
    assert sorted(p.value for p in found) == [3, 5]
    disc = next(p for p in found if p.value == 3)
    assert 3 <= len(disc.points) <= 24 and ShapelyPolygon(disc.points).is_valid
    assert ShapelyPolygon(disc.points).area == pytest.approx(math.pi * 200**2, rel=0.03)
    only = polygons_from_mask(mask, values={5: "necrosis"})
    assert [p.value for p in only] == [5]
    styles = {3: s.Style(stroke_style="#ff0000"), 5: s.Style(stroke_style="#0000ff")}
    result = mask_result(mask, PYRAMID, 2.0, styles=styles, max_points=24).build("slide-001", "2 classes")
    validate_result(result, max_y=PYRAMID.max_y)
    assert [item.style for item in result.data.result.content] == [styles[3], styles[5]]
    with pytest.raises(ValidationError, match="2-D"):
        polygons_from_mask(np.zeros((4, 4, 3)))
    with pytest.raises(ValidationError, match="integer labels"):
        polygons_from_mask(np.zeros((4, 4), np.float32))


def test_mask_touching_the_slide_edge_stays_on_the_slide() -> None:
    pyramid = Pyramid(1800, 1000, 240)
    mask = np.ones((63, 113), bool)  # level 4 of this pyramid, rounded up (spec §6)
    result = mask_result(mask, pyramid, 16.0).build("s", "all tissue")
    validate_result(result, max_y=pyramid.max_y)
    assert shapely.is_valid(ShapelyPolygon([(p.x, p.y) for p in result.data.result.content[0].polygons[0].points]))
