"""A model's mask → Sectra polygons: OpenCV traces the outlines, shapely simplifies and validates.

``polygons_from_mask(mask, downsample)`` takes a binary or label mask at any level (``downsample``
relative to level 0, e.g. ``slide.level_downsamples[level]``, or level-0 µm/px over the mask's
µm/px) and returns the outlines in level-0 pixels, grouped by class, ready for
``PrimitiveBuilder.polygon_px`` — or, with ``pyramid=``, a validated primitive result content via
the builders (:func:`mask_result`).

Holes: Sectra polygons have no holes (spec §5.6), so a hole is returned as its own outline (the
viewer draws both rings, which reads as a ring-shaped region) unless ``holes=False``. Several
components give several polygons. Each polygon is simplified (shapely's topology-preserving
Douglas-Peucker) until it has at most ``max_points`` corners.

Needs numpy, OpenCV (``opencv-python-headless``) and shapely: ``pip install 'sectra-sdk[shapes]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .. import schemas as s
from ..app.builders import PrimitiveBuilder
from ..errors import ValidationError, require
from ..geometry import Pyramid

__all__ = ["MaskPolygon", "polygons_from_mask", "mask_result"]


@dataclass(frozen=True)
class MaskPolygon:
    """One traced outline: level-0 pixel corners (not closed), the mask value it came from, and
    whether it is a hole's outline."""

    points: list[tuple[float, float]]
    value: int
    hole: bool = False
    area: float = field(default=0.0, compare=False)


def _libs() -> tuple[Any, Any, Any]:
    feature = "polygons_from_mask"
    return require("numpy", "shapes", feature), require("cv2", "shapes", feature), require("shapely", "shapes", feature)


def _simplify(shapely: Any, ring: Any, max_points: int, tolerance: float) -> Any:
    """Simplify a shapely Polygon until its exterior has at most ``max_points`` corners."""
    poly = ring
    tol = tolerance
    while len(poly.exterior.coords) - 1 > max_points:
        tol = max(tol * 2, 0.5)
        simpler = ring.simplify(tol, preserve_topology=True)
        if simpler.is_empty or simpler.geom_type != "Polygon":
            break
        poly = simpler
    return poly


def polygons_from_mask(
    mask: Any, downsample: float = 1.0, *, origin: tuple[float, float] = (0.0, 0.0),
    values: Mapping[int, Any] | None = None, holes: bool = True, max_points: int = 500,
    tolerance: float = 0.5, min_area: float = 0.0,
) -> list[MaskPolygon]:
    """Outlines of every nonzero region of ``mask`` (2-D, bool or integer labels), in level-0 pixels.

    ``downsample``: level-0 pixels per mask pixel. ``origin``: level-0 position of the mask's
    top-left corner (a mask of a region read at ``location``). ``values``: the label values to
    trace (default: every nonzero value; each value traced separately, so touching classes keep
    their own outlines). ``max_points``: corner budget per polygon (>= 3). ``tolerance``: initial
    simplification in mask pixels. ``min_area``: drop regions smaller than this many mask pixels.
    """
    np, cv2, shapely = _libs()
    from shapely.geometry import Polygon
    from shapely.validation import make_valid

    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValidationError(f"a mask is a 2-D array (height, width), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValidationError(f"a mask holds bools or integer labels, got dtype {array.dtype}")
    if not (downsample > 0 and max_points >= 3):
        raise ValidationError("downsample must be > 0 and max_points >= 3")
    wanted = sorted(int(v) for v in (values if values is not None else np.unique(array)) if int(v) != 0)
    ox, oy = origin
    out: list[MaskPolygon] = []
    for value in wanted:
        binary = (array == value).astype(np.uint8)
        # RETR_CCOMP: two levels, outer outlines and their holes (an island inside a hole is an
        # outer outline again); CHAIN_APPROX_SIMPLE drops collinear pixels. Contours run through
        # boundary pixels' indices; pixel i covers [i, i+1), so its centre is i + 0.5 (below).
        contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
        if hierarchy is None:
            continue
        for contour, (_, _, _, parent) in zip(contours, hierarchy[0]):
            pts = contour.reshape(-1, 2).astype(float)
            if len(pts) < 3:
                continue  # a one- or two-pixel line: no area to outline
            is_hole = parent >= 0
            if is_hole and not holes:
                continue
            poly = Polygon(pts)
            if not poly.is_valid:
                fixed = make_valid(poly)
                parts = [g for g in getattr(fixed, "geoms", [fixed]) if g.geom_type == "Polygon"]
                if not parts:
                    continue
                poly = max(parts, key=lambda g: g.area)
            if poly.area < max(min_area, 1e-9):
                continue
            poly = _simplify(shapely, Polygon(poly.exterior), max_points, tolerance)
            coords = list(poly.exterior.coords)[:-1]
            if len(coords) < 3:
                continue
            points = [(ox + (x + 0.5) * downsample, oy + (y + 0.5) * downsample) for x, y in coords]
            out.append(MaskPolygon(points, value, is_hole, poly.area * downsample * downsample))
    return out


def mask_result(
    mask: Any, pyramid: Pyramid, downsample: float = 1.0, *, styles: Mapping[int, s.Style] | None = None,
    builder: PrimitiveBuilder | None = None, **options: Any,
) -> PrimitiveBuilder:
    """:func:`polygons_from_mask` added to a :class:`PrimitiveBuilder` (new or given): one style per
    label value (``styles``; a class per value), every polygon width-normalised and checked on the
    slide. Call ``.build(slide_id, text)`` on the returned builder."""
    builder = builder or PrimitiveBuilder(pyramid)
    for polygon in polygons_from_mask(mask, downsample, **options):
        style = (styles or {}).get(polygon.value)
        # A mask at a level whose size was rounded up (spec §6) may reach past the slide by under
        # one mask pixel: keep the outline on the slide.
        points = [(min(max(x, 0.0), pyramid.width), min(max(y, 0.0), pyramid.height)) for x, y in polygon.points]
        builder.polygon_px(points, style=style)
    return builder
