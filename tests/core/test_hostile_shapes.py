"""Issue 27: malformed GeoJSON ends in ValidationError naming where, and ``polygons_from_mask``
works in time linear in the mask's pixels (it traced every label over the whole mask)."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest

from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid
from sectra_core.shapes import from_geojson, input_from_geojson, polygons_from_mask

PYRAMID = Pyramid(1000, 800, 256, 0.25)
SQUARE = [[10, 10], [100, 10], [100, 100], [10, 100], [10, 10]]


def feature(geometry: Any, properties: Any = None) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": geometry, "properties": properties}]}


@pytest.mark.parametrize(("collection", "words"), [
    (None, "got NoneType"),
    (5, "got int"),
    ("features", "got str"),
    (feature({"type": "Polygon", "coordinates": [5]}), "5 is not a list of positions"),
    (feature({"type": "Polygon", "coordinates": [[5, 6]]}), "5 is not a position"),
    (feature({"type": "Polygon", "coordinates": [[[1]]]}), r"\[1\] is not a position"),
    (feature({"type": "Polygon", "coordinates": [[["a", "b"], [1, 2], [3, 4]]]}), "is not a position"),
    (feature({"type": "Polygon", "coordinates": [[[1, 2, 3, 4], [1, 2], [3, 4]]]}), "is not a position"),
    (feature({"type": "Polygon", "coordinates": [[[None, None], [1, 2], [3, 4]]]}), "is not a position"),
    (feature({"type": "Polygon", "coordinates": [[[True, False], [1, 2], [3, 4]]]}), "is not a position"),
    (feature({"type": "Point", "coordinates": [1]}), r"\[1\] is not a position"),
    (feature({"type": "LineString", "coordinates": [[1, 2], [3]]}), "is not a position"),
    (feature({"type": "Polygon", "coordinates": [SQUARE]}, {"sectra": {"kind": "arc", "arc": {"center": 5}}}),
     "sectra.arc.center"),
    (feature({"type": "Polygon", "coordinates": [SQUARE]}, {"sectra": {"kind": "arc", "arc": {"center": [1, 2]}}}),
     "sectra.arc needs center"),
    ({**feature({"type": "Polygon", "coordinates": [SQUARE]}), "sectra": {"type": "patchCollection", "gallery": 5}},
     "sectra.gallery is an object"),
    ({**feature({"type": "Polygon", "coordinates": [SQUARE]}), "sectra": {"displayProperties": 5}},
     "sectra.displayProperties is an object"),
])
def test_malformed_geojson_is_a_validation_error_naming_the_problem(collection: Any, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        from_geojson(collection, PYRAMID, slide_id="s")
    if "sectra" not in words:
        with pytest.raises(ValidationError, match=words):
            input_from_geojson(collection, PYRAMID)


def test_an_altitude_is_dropped_not_refused() -> None:
    ring = [[x, y, 0.0] for x, y in SQUARE]
    result = input_from_geojson(feature({"type": "Polygon", "coordinates": [ring]}), PYRAMID)
    assert len(result.content.polygons[0].points) == 4  # type: ignore[union-attr]


def cells(side: int, pitch: int) -> np.ndarray:
    n = side // pitch
    labels = np.kron(np.arange(1, n * n + 1, dtype=np.int32).reshape(n, n), np.ones((pitch, pitch), np.int32))
    block = np.zeros((pitch, pitch), np.int32)
    block[2:-2, 2:-2] = 1
    return labels * np.tile(block, (n, n))


def test_polygons_from_mask_traces_each_label_in_its_box(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pixels OpenCV is given stay within a constant factor of the mask's, however many
    labels: before, each of the 1,600 labels here was traced over the whole mask (1,600x)."""
    traced: list[int] = []
    find = cv2.findContours

    def counting(image: Any, *args: Any, **kwargs: Any) -> Any:
        traced.append(image.size)
        return find(image, *args, **kwargs)

    monkeypatch.setattr(cv2, "findContours", counting)
    mask = cells(400, 10)  # 1,600 cells of 6x6 pixels
    polygons = polygons_from_mask(mask)
    assert len(polygons) == 1600 and len(traced) == 1600
    assert sum(traced) <= 2 * mask.size
    assert {p.area for p in polygons} == {36.0}
    # and where the cells are: the first cell's outline runs along its pixels' edges
    first = next(p for p in polygons if p.value == 1)
    xs, ys = zip(*first.points)
    assert (min(xs), max(xs), min(ys), max(ys)) == (2.0, 8.0, 2.0, 8.0)
