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


# --- holes stay holes (issue #24) ---------------------------------------------------------------


def ring_mask() -> np.ndarray:
    """A square ring (outline with a hole), an island inside the hole, and a separate square."""
    mask = np.zeros((100, 150), np.uint8)
    mask[10:90, 10:110] = 1
    mask[25:75, 25:95] = 0  # the hole
    mask[40:60, 45:75] = 1  # an island inside it
    mask[20:40, 120:140] = 1  # another region
    return mask


def shapes_of(collection: dict) -> list:
    return [shapely.geometry.shape(f["geometry"]) for f in collection["features"]]


def assert_rfc7946(geometry: object) -> None:
    """Valid, exterior counter-clockwise and holes clockwise as shapely computes it (``orient`` with
    sign 1.0 changes nothing)."""
    assert geometry.is_valid  # type: ignore[attr-defined]
    assert shapely.is_ccw(geometry.exterior)  # type: ignore[attr-defined]
    assert not any(shapely.is_ccw(ring) for ring in geometry.interiors)  # type: ignore[attr-defined]
    assert shapely.geometry.polygon.orient(geometry, 1.0).equals_exact(geometry, 0)  # type: ignore[arg-type]


def test_mask_holes_export_as_interior_rings_with_the_masks_area() -> None:
    mask = ring_mask()
    downsample = 4.0
    result = mask_result(mask, PYRAMID, downsample).build("slide-001", "tissue")
    assert result.data.context == {"polygonHoles": [[3]]}  # the hole is listed after the three outlines
    collection = json.loads(json.dumps(to_geojson(result, PYRAMID)))
    geometries = shapes_of(collection)
    assert sorted(len(g.interiors) for g in geometries) == [0, 0, 1]  # square, island, ring with its hole
    for g in geometries:
        assert_rfc7946(g)
    (ring,) = [g for g in geometries if g.interiors]
    assert ring.exterior.bounds == pytest.approx((40, 40, 440, 360))  # level-0 pixels, along the pixel edges
    hole = shapely.geometry.Polygon(ring.interiors[0])
    assert hole.bounds == pytest.approx((100, 100, 380, 300))
    assert [g.within(hole) for g in geometries] == [g.bounds == pytest.approx((180, 160, 300, 240)) for g in geometries]
    assert sum(g.within(hole) for g in geometries) == 1  # the island, in the hole
    # The class's area is the mask's: outline minus hole plus island plus square, not their sum.
    area = shapely.union_all(geometries).area
    assert sum(g.area for g in geometries) == pytest.approx(area)  # nothing overlaps
    pixels = int(mask.sum()) * downsample**2
    assert area == pytest.approx(pixels, rel=2e-3)
    filled = sum(shapely.geometry.Polygon(g.exterior).area + sum(shapely.geometry.Polygon(h).area for h in g.interiors)
                 for g in geometries)
    assert filled > 1.5 * pixels  # what exporting the hole as a filled polygon gave


def test_mask_areas_match_pixel_counts_in_every_shape() -> None:
    """Outlines follow the pixel edges: an area is the pixel count (diagonal steps cut straight)."""
    yy, xx = np.mgrid[0:300, 0:300]
    d = (yy - 150) ** 2 + (xx - 150) ** 2
    for mask in (d < 100**2, (d < 100**2) & (d > 60**2), yy > xx, ring_mask().astype(bool)):
        found = polygons_from_mask(mask, 2.0, max_points=100_000)
        area = sum(-p.area if p.hole else p.area for p in found)
        assert area == pytest.approx(mask.sum() * 4, rel=5e-3)
    line = np.zeros((9, 9), bool)
    line[4, 1:8] = True  # a line one pixel wide keeps its area
    (found,) = polygons_from_mask(line)
    assert found.area == pytest.approx(7) and ShapelyPolygon(found.points).bounds == (1, 4, 8, 5)


def test_holes_never_cross_their_outline_after_simplification() -> None:
    """A square hole whose corners come within 8 pixels of a disc's edge: simplified to 12 corners
    each, the two rings cross. The export cuts the hole out of the outline instead: valid polygons,
    oriented, and nothing outside the simplified outline."""
    import cv2

    from sectra_core.shapes.masks import _simplify

    yy, xx = np.mgrid[0:400, 0:400]
    mask = ((yy - 200) ** 2 + (xx - 200) ** 2 < 180**2).astype(np.uint8)
    corners = [(200 + 172 * math.cos(math.radians(10 + 90 * k)), 200 + 172 * math.sin(math.radians(10 + 90 * k))) for k in range(4)]
    cv2.fillPoly(mask, [np.array(corners, np.int32)], 0)
    exact = polygons_from_mask(mask, max_points=100_000)
    assert [p.hole for p in exact] == [False, True]
    alone = [_simplify(ShapelyPolygon(p.points), 12, 0.5) for p in exact]
    assert not ShapelyPolygon(alone[0].exterior.coords, [alone[1].exterior.coords]).is_valid  # they cross
    result = mask_result(mask, PYRAMID, 1.0, max_points=12).build("slide-001", "x")
    geometries = shapes_of(to_geojson(result, PYRAMID))
    for g in geometries:
        assert_rfc7946(g)
    # What is left is the outline less the hole, as simplified (Douglas-Peucker starts where the
    # ring starts, so the export's corners may differ by a pixel from this re-run).
    union, cut = shapely.union_all(geometries), alone[0].difference(alone[1])
    assert union.symmetric_difference(cut).area < 0.01 * cut.area
    assert union.within(alone[0].buffer(2))


def test_qupath_holes_and_multipolygons_round_trip() -> None:
    square = [[100, 100], [900, 100], [900, 700], [100, 700], [100, 100]]  # clockwise as written
    hole = [[300, 300], [300, 500], [500, 500], [500, 300], [300, 300]]
    island = [[350, 350], [450, 350], [450, 450], [350, 450], [350, 350]]
    multi = [[[[1000, 100], [1400, 100], [1400, 500], [1000, 500], [1000, 100]],
              [[1100, 200], [1200, 200], [1200, 300], [1100, 300], [1100, 200]],
              [[1250, 200], [1350, 200], [1350, 300], [1250, 300], [1250, 200]]],
             [[[1500, 100], [1600, 100], [1600, 200], [1500, 100]]]]
    tumour = {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}
    qupath = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [square, hole]}, "properties": tumour},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [island]}, "properties": tumour},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": multi},
         "properties": {"objectType": "annotation", "classification": {"name": "Stroma"}}},
    ]}
    source = shapely.union_all(shapes_of(qupath))
    result = from_geojson(qupath, PYRAMID, slide_id="slide-001")
    assert result.data.context["polygonHoles"] == [[1], [1, 2]]
    exported = json.loads(json.dumps(to_geojson(result, PYRAMID)))
    geometries = shapes_of(exported)
    assert [len(g.interiors) for g in geometries] == [1, 0, 2, 0]
    for g in geometries:
        assert_rfc7946(g)
    assert shapely.union_all(geometries).equals(source)
    assert sum(g.area for g in geometries) == pytest.approx(800 * 600 - 200 * 200 + 100 * 100 + 400 * 400 - 2 * 100 * 100 + 5000)
    back = from_geojson(exported, PYRAMID)
    close(back, result)  # and again: the holes, the point order, the context
    close(to_geojson(back, PYRAMID), exported)


def test_nested_outlines_of_a_result_without_a_hole_list_are_holes_by_nesting() -> None:
    """A result from elsewhere (no ``polygonHoles``): even-odd nesting within a group, not across
    groups; its export round-trips exactly, point order included (rings turned round are noted)."""
    b = PrimitiveBuilder(PYRAMID)
    red, blue = s.Style(stroke_style="#ff0000"), s.Style(stroke_style="#0000ff")
    b.rectangle(0.1, 0.1, 0.5, 0.5, style=red)  # counter-clockwise on screen: clockwise as written
    b.polygon([(0.2, 0.2), (0.2, 0.4), (0.4, 0.4), (0.4, 0.2)], style=red)  # inside: a hole
    b.rectangle(0.25, 0.25, 0.35, 0.35, style=red)  # inside the hole: an island
    b.rectangle(0.22, 0.22, 0.24, 0.24, style=blue)  # inside, but another group: its own polygon
    result = b.build("slide-001", "nested")
    assert result.data.context == {}
    collection = json.loads(json.dumps(to_geojson(result, PYRAMID)))
    geometries = shapes_of(collection)
    assert [len(g.interiors) for g in geometries] == [1, 0, 0]
    for g in geometries:
        assert_rfc7946(g)
    assert geometries[0].area == pytest.approx((960**2 - 480**2))
    back = from_geojson(collection, PYRAMID)
    close(back, result)


def test_a_listed_hole_outside_every_outline_is_its_own_polygon_with_a_warning() -> None:
    from sectra_core.shapes import GeometryWarning

    b = PrimitiveBuilder(PYRAMID)
    b.rectangle(0.1, 0.1, 0.3, 0.3)
    b.rectangle(0.15, 0.15, 0.2, 0.2)  # listed as no hole: a same-class region drawn inside another
    b.polygon([(0.5, 0.5), (0.6, 0.5), (0.6, 0.6)], hole=True)  # a "hole" outside everything
    result = b.build("slide-001", "stray")
    assert result.data.context == {"polygonHoles": [[2]]}
    with pytest.warns(GeometryWarning, match=r"item 0: polygon 2 is listed as a hole .* inside no outline"):
        geometries = shapes_of(to_geojson(result, PYRAMID))
    assert [len(g.interiors) for g in geometries] == [0, 0, 0]  # three polygons, none with a hole
    for g in geometries:
        assert_rfc7946(g)
    # The same from QuPath: an interior ring that lies outside its exterior.
    bad = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[100, 100], [200, 100], [200, 200], [100, 200], [100, 100]], [[500, 500], [600, 500], [600, 600], [500, 500]]]},
        "properties": {"classification": {"name": "Tumor"}}}
    imported = from_geojson(bad, PYRAMID, slide_id="slide-001")
    with pytest.warns(GeometryWarning, match="polygon 1 is listed as a hole"):
        assert [len(g.interiors) for g in shapes_of(to_geojson(imported, PYRAMID))] == [0, 0]


def test_a_hole_list_that_does_not_fit_is_ignored_with_a_warning() -> None:
    from sectra_core.shapes import GeometryWarning

    b = PrimitiveBuilder(PYRAMID)
    b.rectangle(0.1, 0.1, 0.3, 0.3).rectangle(0.15, 0.15, 0.2, 0.2)
    result = b.build("slide-001", "x", context={"polygonHoles": [[5]]})  # stale: no polygon 5
    with pytest.warns(GeometryWarning, match="does not fit"):
        geometries = shapes_of(to_geojson(result, PYRAMID))
    assert [len(g.interiors) for g in geometries] == [1]  # found by nesting instead


def test_every_exported_polygon_runs_as_rfc7946_asks() -> None:
    g = PatchGalleryBuilder(["T"], pyramid=PYRAMID)
    g.region([(0.2, 0.2), (0.2, 0.4), (0.4, 0.4), (0.4, 0.2)])  # clockwise as written: turned round
    g.patch(0, (0.3, 0.3))
    collections = [to_geojson(primitives(), PYRAMID), to_geojson(g.build("slide-001", "g"), PYRAMID)]
    area = s.MultiAreaInput(content=s.MultiAreaContent(polygons=[
        s.Polygon(points=[s.Point(x=0.1, y=0.1), s.Point(x=0.1, y=0.2), s.Point(x=0.2, y=0.2)])]))
    collections.append(to_geojson(area, PYRAMID))
    polygons = [shape for c in collections for shape in shapes_of(c) if shape.geom_type == "Polygon"]
    assert len(polygons) == 5  # 2 triangles, a circle, a region, an area
    for polygon in polygons:
        assert_rfc7946(polygon)
    region = to_geojson(g.build("slide-001", "g"), PYRAMID)
    close(from_geojson(json.loads(json.dumps(region)), PYRAMID), g.build("slide-001", "g"))
    close(input_from_geojson(collections[2], PYRAMID), area)


def test_many_holes_found_alike_by_list_and_by_nesting() -> None:
    """A hundred squares with a hole each, inside one frame's hole: the listed holes and the holes
    found by nesting (a grid of boxes picks the candidates) give the same polygons and area."""
    mask = np.zeros((420, 420), np.uint8)
    mask[0:420, 0:420] = 1
    mask[10:410, 10:410] = 0  # the frame's hole
    for i in range(10):
        for j in range(10):
            y, x = 15 + i * 39, 15 + j * 39
            mask[y:y + 30, x:x + 30] = 1
            mask[y + 10:y + 20, x + 10:x + 20] = 0
    listed = mask_result(mask, PYRAMID, 2.0).build("slide-001", "x")
    assert sum(map(len, listed.data.context["polygonHoles"])) == 101
    nested = mask_result(mask, PYRAMID, 2.0).build("slide-001", "x", context=["no list"])
    by_list, by_nesting = shapes_of(to_geojson(listed, PYRAMID)), shapes_of(to_geojson(nested, PYRAMID))
    assert [len(g.interiors) for g in by_list] == [len(g.interiors) for g in by_nesting]
    assert sorted(len(g.interiors) for g in by_list) == [1] * 101
    assert shapely.union_all(by_list).equals(shapely.union_all(by_nesting))
    assert sum(g.area for g in by_list) == pytest.approx(int(mask.sum()) * 4, rel=2e-3)  # hole corners cut: +0.1 %
