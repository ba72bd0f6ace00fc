"""A model's mask → Sectra polygons: OpenCV traces the outlines, shapely simplifies and validates.

``polygons_from_mask(mask, downsample)`` takes a binary or label mask at any level (``downsample``
relative to level 0, e.g. ``slide.level_downsamples[level]``, or level-0 µm/px over the mask's
µm/px) and returns the outlines in level-0 pixels, grouped by class, ready for
``PrimitiveBuilder.polygon_px`` — or, with ``pyramid=``, a validated primitive result content via
the builders (:func:`mask_result`).

Holes: Sectra polygons have no holes (spec §5.6), so a hole is returned as its own outline, flagged
``hole=True`` and listed right after the outline it lies in (the viewer draws both rings, which reads
as a ring-shaped region); :func:`mask_result` passes the flag on to the builder, which records it in
the result's context so :func:`~sectra_core.shapes.to_geojson` writes the hole as an interior ring.
``holes=False`` leaves holes out (filled regions). Several components give several polygons; an
island inside a hole is a component of its own. Each ring is simplified (shapely's
topology-preserving Douglas-Peucker) until it has at most ``max_points`` corners, and the holes are
then cut out of their outline, so a hole never crosses it (where a simplified hole would, the
outline gets a notch and the two points where they meet).

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


def _simplify(ring: Any, max_points: int, tolerance: float) -> Any:
    """Simplify a shapely Polygon (one ring) until it has at most ``max_points`` corners."""
    poly = ring
    tol = tolerance
    # Bounded: a topology-preserving simplification may never get under the budget (a thin
    # C-shaped outline keeps its corners), and the doubled tolerance would run to infinity.
    for _ in range(64):
        if len(poly.exterior.coords) - 1 <= max_points:
            break
        tol = max(tol * 2, 0.5)
        simpler = ring.simplify(tol, preserve_topology=True)
        if simpler.is_empty or simpler.geom_type != "Polygon":
            break
        poly = simpler
    return poly


def _label_boxes(np: Any, array: Any) -> dict[int, tuple[int, int, int, int]]:
    """Every nonzero label's bounding box ``(row0, row1, col0, col1)`` (inclusive), in one pass
    over the nonzero pixels (a stable integer sort groups them by label)."""
    flat = array.reshape(-1)
    index = np.flatnonzero(flat)
    if index.size == 0:
        return {}
    labels = flat[index].astype(np.int64)
    rows, cols = np.divmod(index, array.shape[1])
    order = np.argsort(labels, kind="stable")  # raster order kept within a label: rows ascend
    labels, rows, cols = labels[order], rows[order], cols[order]
    starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1])))
    ends = np.concatenate((starts[1:], [labels.size])) - 1
    col0, col1 = np.minimum.reduceat(cols, starts), np.maximum.reduceat(cols, starts)
    return {int(v): (int(a), int(b), int(c), int(d))
            for v, a, b, c, d in zip(labels[starts], rows[starts], rows[ends], col0, col1)}


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
    simplification in mask pixels. ``min_area``: drop regions (and fill holes) smaller than this
    many mask pixels.

    Outlines run along the pixels' edges (pixel ``i`` covers ``[i, i+1)`` of the mask, so
    ``origin + i * downsample`` in level-0 pixels): an outline's area less its holes' is the
    region's pixel count times ``downsample`` squared, up to the simplification and the diagonal
    steps, which are cut straight.
    """
    np, cv2, _ = _libs()
    from shapely.geometry import LineString, Point, Polygon
    from shapely.ops import unary_union
    from shapely.validation import make_valid

    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValidationError(f"a mask is a 2-D array (height, width), got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValidationError(f"a mask holds bools or integer labels, got dtype {array.dtype}")
    if not (downsample > 0 and max_points >= 3):
        raise ValidationError("downsample must be > 0 and max_points >= 3")
    boxes = _label_boxes(np, array)
    wanted = sorted(int(v) for v in values if int(v) != 0) if values is not None else sorted(boxes)
    ox, oy = origin
    out: list[MaskPolygon] = []

    def ring_points(coords: Any) -> list[tuple[float, float]]:
        # OpenCV gives pixel indices; pixel i's centre is i + 0.5 in edge coordinates.
        return [(ox + (x + 0.5) * downsample, oy + (y + 0.5) * downsample) for x, y in list(coords)[:-1]]

    smallest = max(min_area, 1e-9)
    for value in wanted:
        if value not in boxes:
            continue  # a value asked for that the mask does not hold
        # Only the label's bounding box, with a zero border (so an outline along the box's edge
        # is traced as at the mask's edge): the work is the box's pixels, not the mask's, so a
        # mask of many cells costs one pass, not one pass per cell.
        r0, r1, c0, c1 = boxes[value]
        binary = np.zeros((r1 - r0 + 3, c1 - c0 + 3), np.uint8)
        binary[1:-1, 1:-1] = array[r0:r1 + 1, c0:c1 + 1] == value
        # RETR_CCOMP: two levels, outer outlines and their holes (an island inside a hole is an
        # outer outline again); CHAIN_APPROX_SIMPLE drops collinear pixels. ``offset`` puts the
        # box's pixels back at their place in the mask.
        contours, hierarchy = cv2.findContours(binary, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE,
                                               offset=(c0 - 1, r0 - 1))
        if hierarchy is None:
            continue
        rings = [c.reshape(-1, 2).astype(float) for c in contours]
        parents = [int(h[3]) for h in hierarchy[0]]
        for i, outer in enumerate(rings):
            if parents[i] >= 0:
                continue  # a hole: traced with its outline below
            inner = [rings[j] for j, p in enumerate(parents) if p == i and len(rings[j]) >= 3] if holes else []
            # OpenCV's contours run through the centres of the region's boundary pixels (pixel i
            # covers [i, i+1)); grown by half a pixel, square-cornered, they run along the pixels'
            # edges instead, so a region's area is its pixel count (a diagonal step is cut straight:
            # within a fraction of a percent) and a line of pixels one wide keeps its area. The
            # region is grown with its holes (which shrink), so every hole stays inside its outline,
            # and an outline that touches itself (pixels meeting at a corner) comes out valid.
            if len(outer) >= 3:
                region = make_valid(Polygon(outer, [h for h in inner if Polygon(h).area >= smallest]))
            else:
                region = LineString(outer) if len(outer) == 2 else Point(outer[0])
            grown = region.buffer(0.5, cap_style="square", join_style="mitre", mitre_limit=2.0)
            parts = [g for g in getattr(grown, "geoms", [grown]) if g.geom_type == "Polygon"]
            for part in parts:
                if part.area < smallest:
                    continue
                # Each ring is simplified on its own (one tolerance for all would shrink a hole
                # near its outline to a triangle before the outline met the budget); the holes are
                # then cut out of the outline, so a simplified hole that crosses it leaves a notch,
                # never an invalid polygon, and the area stays outline minus holes.
                outline = _simplify(Polygon(part.exterior), max_points, tolerance)
                cut = [_simplify(Polygon(h), max_points, tolerance) for h in part.interiors if Polygon(h).area >= smallest]
                shape = outline.difference(unary_union(cut)) if cut else outline
                for poly in (g for g in getattr(shape, "geoms", [shape]) if g.geom_type == "Polygon"):
                    if len(poly.exterior.coords) < 4 or poly.area < smallest:
                        continue
                    out.append(MaskPolygon(ring_points(poly.exterior.coords), value, False,
                                           Polygon(poly.exterior).area * downsample * downsample))
                    for hole in poly.interiors:
                        if len(hole.coords) >= 4:
                            out.append(MaskPolygon(ring_points(hole.coords), value, True,
                                                   Polygon(hole).area * downsample * downsample))
    return out


def mask_result(
    mask: Any, pyramid: Pyramid, downsample: float = 1.0, *, styles: Mapping[int, s.Style] | None = None,
    builder: PrimitiveBuilder | None = None, **options: Any,
) -> PrimitiveBuilder:
    """:func:`polygons_from_mask` added to a :class:`PrimitiveBuilder` (new or given): one style per
    label value (``styles``; a class per value), every polygon width-normalised and checked on the
    slide. Holes are added as holes (the builder records them in the result's context, see
    :data:`~sectra_core.app.builders.HOLES_KEY`). Call ``.build(slide_id, text)`` on the returned builder."""
    builder = builder or PrimitiveBuilder(pyramid)
    for polygon in polygons_from_mask(mask, downsample, **options):
        style = (styles or {}).get(polygon.value)
        # A mask at a level whose size was rounded up (spec §6) may reach past the slide by under
        # one mask pixel: keep the outline on the slide.
        points = [(min(max(x, 0.0), pyramid.width), min(max(y, 0.0), pyramid.height)) for x, y in polygon.points]
        builder.polygon_px(points, style=style, hole=polygon.hole)
    return builder
