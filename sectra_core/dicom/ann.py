"""Sectra results → DICOM Microscopy Bulk Simple Annotations (Supplement 222, "ANN"), with highdicom.

The annotation is made in the slide's own frame of reference: its patient, study, frame of
reference and referenced image are the level-0 instance's (:mod:`.identity`). Coordinates are 2D
image coordinates of that instance's total pixel matrix (``AnnotationCoordinateType`` ``2D``,
column\\row, the top-left corner of the top-left pixel at 0,0), i.e. Sectra's width-normalised
points times the level-0 width on both axes (spec §2.4), stored as 64-bit floats
(``DoublePointCoordinatesData``) so reading them back gives the same numbers.

What goes where (one annotation group per class and kind; see docs/dicom.md):

* primitive items: each item's polygons are a ``POLYGON`` group, its polylines a ``POLYLINE``
  group, its labels ``POINT`` groups (one per distinct text: ANN has no text per annotation, so the
  text is the group's label); a full-circle arc is traced to a polygon of
  :data:`~sectra_core.shapes.geojson.ARC_SEGMENTS` points, a partial arc to a polyline;
* holes: ANN polygons have no interior rings. A hole (listed in the result's context or found by
  nesting, as :func:`~sectra_core.shapes.to_geojson` finds them) is an annotation of a companion
  ``POLYGON`` group labelled ``"<class> (holes)"``, whose :data:`HOLE_OF` measurement gives the
  1-based number of the outline around it in the class's group. The class's area is its polygons
  minus their holes (what the :data:`~sectra_core.dicom.codes.AREA` measurements say, when the
  slide has a pixel spacing);
* patch collections: the analysed regions are a ``POLYGON`` group, the patches ``POINT`` groups,
  one per tag, each patch's ``sortKeyValue`` a measurement;
* numbers in ``displayProperties``: ANN measurements are per annotation, so a result-wide number is
  a measurement of every annotation of every group (as Sectra shows it in every graphic's popup);
  text properties have no place in ANN (they go to the SR, :func:`~sectra_core.dicom.to_dicom_sr`);
* the stroke colour is each group's recommended display colour (CIELab).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.sr.coding import Code

from .. import __version__
from .. import schemas as s
from ..drawing import parse_colour
from ..errors import ValidationError
from ..geometry import Pyramid
from ..app.builders import HOLES_KEY
from ..shapes.geojson import ARC_SEGMENTS, CLASSES_KEY, GeometryWarning, outline_holes
from .codes import AREA, LOCAL_SCHEME, NO_UNITS, SORT_KEY, SQUARE_MICROMETER, ClassCodes, MeasurementCodes, class_codes, \
    measurement_codes
from .identity import DicomSourceError, SlideIdentity, Source, slide_identity

__all__ = ["to_dicom_ann", "HOLE_OF", "ANN_SOP_CLASS"]

#: Microscopy Bulk Simple Annotations Storage.
ANN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.91.1"

#: The measurement of a hole annotation: the 1-based number of the outline around it in its
#: class's polygon group.
HOLE_OF = Code("holeOf", LOCAL_SCHEME, "Number of the annotation this hole is cut from")


@dataclass
class _Group:
    label: str
    description: str
    graphic_type: str
    cls: str
    stroke: str | None
    coords: list[np.ndarray] = field(default_factory=list)
    extra: list[tuple[Any, Any, np.ndarray]] = field(default_factory=list)  # (name, unit, values)


def _flat(point_lists: Sequence[Sequence[s.Point]], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Width-normalised point lists → (float64 level-0 (column, row) of all points, count per list)."""
    counts = np.fromiter((len(points) for points in point_lists), dtype=np.int64, count=len(point_lists))
    flat = np.fromiter((c for points in point_lists for p in points for c in (p.x, p.y)), dtype=np.float64,
                       count=int(counts.sum()) * 2)
    return flat.reshape(-1, 2) * float(width), counts  # spec §2.4: both axes times the width


def _split(flat: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(counts)[:-1]) if len(counts) else []


def _arrays(point_lists: Sequence[Sequence[s.Point]], width: int) -> list[np.ndarray]:
    """Width-normalised point lists → float64 arrays of level-0 (column, row), in one pass."""
    return _split(*_flat(point_lists, width))


class _Rings:
    """An item's polygons in level-0 pixels: as arrays for ANN, each without the closing point that
    repeats its first (ANN polygons are implicitly closed, PS3.3 C.37.1.2), and, only when asked, as
    lists for the nesting search (one ``tolist`` for all)."""

    def __init__(self, polygons: Sequence[s.Polygon], width: int) -> None:
        flat, counts = _flat([p.points for p in polygons], width)
        starts = np.cumsum(counts) - counts
        ends = starts + counts - 1
        closing = np.zeros(len(counts), dtype=bool)
        valid = counts > 1
        closing[valid] = np.all(flat[starts[valid]] == flat[ends[valid]], axis=1)
        keep = np.ones(len(flat), dtype=bool)
        keep[ends[closing]] = False
        self.flat, self.counts = flat, counts
        self.arrays = [_open_ring(r) for r in _split(flat[keep], counts - closing)]

    def lists(self) -> list[list[list[float]]]:
        points = self.flat.tolist()
        bounds = np.concatenate([[0], np.cumsum(self.counts)]).tolist()
        return [points[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _open_ring(ring: np.ndarray) -> np.ndarray:
    # A ring closed more than once (rare): drop every repeat of the first point at its end.
    while len(ring) > 1 and ring[0, 0] == ring[-1, 0] and ring[0, 1] == ring[-1, 1]:
        ring = ring[:-1]
    return ring


#: Slack (level-0 pixels) of the box test below: wider than the nesting search's own, so the test
#: never rules out a ring that search would put inside another.
_BOX_SLACK = 1e-3
#: Boxes spanning more grid cells than this are tested against every box instead.
_BIG_CELLS = 16


def _may_nest(rings: list[np.ndarray]) -> bool:
    """Whether any ring's bounding box lies within another's: a ring the nesting search finds
    inside another lies within its box, so without such a pair no ring is a hole and the (pure
    Python) search can be skipped. Vectorised: each box is bucketed into the grid cells it covers,
    and each ring's lower corner meets the boxes of its cell only."""
    n = len(rings)
    if n < 2:
        return False
    counts = np.fromiter((len(r) for r in rings), dtype=np.int64, count=n)
    if (counts == 0).any():
        return True  # nothing to box: let the search decide
    xy = np.concatenate(rings)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    lo = np.minimum.reduceat(xy, starts, axis=0)
    hi = np.maximum.reduceat(xy, starts, axis=0)
    side = float(max(np.median(hi - lo), 1e-6))
    origin = lo.min(axis=0) - 2 * _BOX_SLACK
    c0 = np.floor((lo - _BOX_SLACK - origin) / side).astype(np.int64)
    c1 = np.floor((hi + _BOX_SLACK - origin) / side).astype(np.int64)
    span = c1 - c0 + 1
    cells = span[:, 0] * span[:, 1]
    big = cells > _BIG_CELLS

    def within(inner: np.ndarray, outer: np.ndarray) -> np.ndarray:
        return ((inner != outer) & (lo[outer] <= lo[inner] + _BOX_SLACK).all(axis=1)
                & (hi[outer] >= hi[inner] - _BOX_SLACK).all(axis=1))

    everyone = np.arange(n)
    for b in np.flatnonzero(big)[:64]:  # a big box (a tissue outline) against every box
        if within(everyone, np.full(n, b)).any():
            return True
    if big.sum() > 64:
        return True  # too many to test one by one: let the search decide
    small = np.flatnonzero(~big)
    # Every (cell, box) pair of the small boxes, keyed by one integer per cell.
    reps = cells[small]
    owner = np.repeat(small, reps)
    offset = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
    width_cells = span[owner, 0]
    cx = c0[owner, 0] + offset % width_cells
    cy = c0[owner, 1] + offset // width_cells
    stride = int(c1[:, 0].max()) + 2
    keys = cy * stride + cx
    order = np.argsort(keys, kind="stable")
    keys, owner = keys[order], owner[order]
    corner = np.floor((lo - origin) / side).astype(np.int64)
    mine = corner[:, 1] * stride + corner[:, 0]
    first = np.searchsorted(keys, mine, side="left")
    last = np.searchsorted(keys, mine, side="right")
    lengths = last - first
    inner = np.repeat(everyone, lengths)
    outer = owner[np.repeat(first, lengths) + (np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths))]
    return bool(within(inner, outer).any())


def _areas(rings: list[np.ndarray]) -> np.ndarray:
    """Unsigned shoelace areas of open rings (pixels²), vectorised over all of them."""
    if not rings:
        return np.zeros(0)
    counts = np.fromiter((len(r) for r in rings), dtype=np.int64, count=len(rings))
    xy = np.concatenate(rings)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    nxt = np.arange(1, len(xy) + 1)
    nxt[starts + counts - 1] = starts
    cross = xy[:, 0] * xy[nxt, 1] - xy[nxt, 0] * xy[:, 1]
    return np.abs(np.add.reduceat(cross, starts)) / 2


def _arc_points(arc: s.Arc, width: int) -> tuple[np.ndarray, bool]:
    """An arc traced as :func:`~sectra_core.shapes.to_geojson` traces it: (points, closed)."""
    start = arc.start_angle if arc.start_angle is not None else 0.0
    end = arc.end_angle if arc.end_angle is not None else 2 * math.pi
    sweep = end - start
    full = abs(sweep) >= 2 * math.pi - 1e-9
    n = ARC_SEGMENTS if full else max(2, math.ceil(ARC_SEGMENTS * abs(sweep) / (2 * math.pi)))
    angles = start + sweep * np.arange(n + (0 if full else 1)) / n
    cx, cy, r = arc.center.x * width, arc.center.y * width, abs(arc.radius) * width
    return np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)]), full


def _class_name(i: int, item: s.PrimitiveItem, classes: Any) -> str:
    if isinstance(classes, list) and i < len(classes) and isinstance(classes[i], str) and classes[i].strip():
        return classes[i].strip()
    if item.style is not None and item.style.stroke_style:
        return item.style.stroke_style
    return f"item {i}"


def _short(text: str, limit: int = 64) -> str:
    # LO: 64 characters, no backslash or control characters.
    clean = "".join(c if c.isprintable() and c != "\\" else " " for c in text).strip()
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _primitive_groups(result: s.Result, content: s.PrimitiveResult, width: int) -> list[_Group]:
    items = content.content if isinstance(content.content, list) else []
    context = result.data.context if result.data is not None else None
    classes = context.get(CLASSES_KEY) if isinstance(context, dict) else None
    all_rings = [_Rings(item.polygons, width) for item in items]
    if not (isinstance(context, dict) and HOLES_KEY in context) and not any(_may_nest(r.arrays) for r in all_rings):
        # No hole list and no ring within another's box: the nesting search would find no hole.
        structure: list[list[tuple[int, list[int]]]] = [[(k, []) for k in range(len(item.polygons))] for item in items]
    else:
        structure = outline_holes(content, context, width, pixels=lambda i: all_rings[i].lists())
    groups: list[_Group] = []
    for i, item in enumerate(items):
        cls = _class_name(i, item, classes)
        stroke = item.style.stroke_style if item.style else None
        where = f"item {i} of the result (class {cls!r})"
        rings = all_rings[i].arrays
        polygons = _Group(_short(cls), f"Polygons of {where}", "POLYGON", cls, stroke)
        holes = _Group(_short(f"{cls} (holes)"), f"Holes of {where}: each is cut from the annotation of group "
                       f"{cls!r} that its measurement 'holeOf' numbers (1-based)", "POLYGON", cls, stroke)
        lines = _Group(_short(f"{cls} (lines)"), f"Polylines of {where}", "POLYLINE", cls, stroke)
        hole_of: list[int] = []
        outer_holes: list[list[int]] = []
        for exterior, hole_indices in structure[i]:
            ring = rings[exterior]
            if len(ring) < 3:
                warnings.warn(f"{where}: polygon {exterior} has fewer than 3 distinct points; not exported",
                              GeometryWarning, stacklevel=3)
                continue
            polygons.coords.append(ring)
            number = len(polygons.coords)
            outer_holes.append([])
            for k in hole_indices:
                hole = rings[k]
                if len(hole) < 3:
                    warnings.warn(f"{where}: hole {k} has fewer than 3 distinct points; not exported",
                                  GeometryWarning, stacklevel=3)
                    continue
                holes.coords.append(hole)
                hole_of.append(number)
                outer_holes[-1].append(len(holes.coords) - 1)
        for arc in item.arcs:
            if not (arc.radius and math.isfinite(arc.radius)):
                warnings.warn(f"{where}: an arc of radius {arc.radius!r} has no extent; not exported", GeometryWarning,
                              stacklevel=3)
                continue
            points, closed = _arc_points(arc, width)
            if closed:
                polygons.coords.append(points)
                outer_holes.append([])
            else:
                lines.coords.append(points)
        lines.coords.extend(_arrays([line.points for line in item.polylines if len(line.points) >= 2], width))
        if hole_of:
            holes.extra.append((HOLE_OF, NO_UNITS, np.asarray(hole_of, dtype=np.float64)))
        polygons_area = _areas(polygons.coords)
        holes_area = _areas(holes.coords)
        for n, cut in enumerate(outer_holes):
            if cut:
                polygons_area[n] -= holes_area[cut].sum()
        polygons.extra.append((AREA, SQUARE_MICROMETER, polygons_area))  # pixels²: to_dicom_ann scales them to µm²
        holes.extra.append((AREA, SQUARE_MICROMETER, holes_area))
        by_text: dict[str, list[s.Point]] = {}
        for label in item.labels:
            by_text.setdefault(label.label, []).append(label.location)
        groups.extend(g for g in (polygons, holes, lines) if g.coords)
        for text, locations in by_text.items():
            group = _Group(_short(text or f"{cls} (label)"), f"Label {text!r} of {where} (its upper-left corner)",
                           "POINT", cls, stroke)
            group.coords = _arrays([[p] for p in locations], width)
            groups.append(group)
    return groups


def _gallery_groups(content: s.PatchContent, width: int) -> list[_Group]:
    groups: list[_Group] = []
    regions = _Group("analysed regions", f"The regions the gallery was made from ({content.description or 'no description'})",
                     "POLYGON", "analysed regions", None)
    for ring in _arrays([p.points for p in content.polygons], width):
        ring = _open_ring(ring)
        if len(ring) >= 3:
            regions.coords.append(ring)
    if regions.coords:
        regions.extra.append((AREA, SQUARE_MICROMETER, _areas(regions.coords)))
        groups.append(regions)
    by_tag: dict[int, list[s.Patch]] = {}
    for patch in content.patches:
        by_tag.setdefault(patch.tag, []).append(patch)
    for tag, patches in sorted(by_tag.items()):
        name = content.tags[tag] if 0 <= tag < len(content.tags) else f"tag {tag}"
        group = _Group(_short(name), f"Gallery patches tagged {name!r} (tag {tag}), each at its centre; "
                       f"{content.patch_size} px at {content.magnification}x", "POINT", name, None)
        group.coords = _arrays([[p.position] for p in patches], width)
        group.extra.append((SORT_KEY, NO_UNITS, np.asarray([p.sort_key_value for p in patches], dtype=np.float64)))
        groups.append(group)
    return groups


def _display_colour(css: str | None) -> Any:
    from highdicom.color import CIELabColor

    rgba = parse_colour(css, None)
    return CIELabColor.from_rgb(*rgba[:3]) if rgba is not None else None


def _result_width(slide: s.ImageInfo | Pyramid | None) -> int | None:
    if slide is None:
        return None
    return (slide if isinstance(slide, Pyramid) else Pyramid.from_image_info(slide)).width


def to_dicom_ann(
    result: s.Result,
    source: Source | SlideIdentity,
    *,
    classes: ClassCodes | None = None,
    measurements: MeasurementCodes | None = None,
    slide: s.ImageInfo | Pyramid | None = None,
    algorithm_name: str = "Sectra IA-API application",
    series_number: int = 900,
    manufacturer: str = "sectra-sdk",
) -> Any:
    """``result`` as a Microscopy Bulk Simple Annotations instance (a ``highdicom.ann.
    MicroscopyBulkSimpleAnnotations``, a pydicom ``Dataset``: ``.save_as(path)`` writes it) in the
    frame of reference of the slide whose DICOM ``source`` is (see :mod:`.identity`).

    ``classes`` maps a class name (an item's class, its stroke colour, a gallery tag) to its
    (property category, property type) codes and ``measurements`` a ``displayProperties`` key to
    its (name, unit) codes; unmapped ones get the defaults of :mod:`.codes`. ``slide``: the slide's
    ``ImageInfo`` as the IA-API gave it, checked to be as wide as the DICOM's level 0 (the points are
    normalised by that width). ``algorithm_name``: the app, as the annotation's algorithm.

    Raises :class:`~sectra_core.dicom.DicomSourceError` when ``source`` is not the slide's DICOM
    and :class:`~sectra_core.errors.ValidationError` when the result has nothing to annotate or a
    point that is not finite; a hole inside no outline warns (:class:`GeometryWarning`).
    """
    import highdicom as hd
    from highdicom.ann import (
        AnnotationGroup,
        AnnotationGroupGenerationTypeValues,
        Measurements,
        MicroscopyBulkSimpleAnnotations,
    )
    from pydicom.sr.codedict import codes

    if not isinstance(result, s.Result):
        raise ValidationError(f"to_dicom_ann takes a Result, got {type(result).__name__}")
    identity = slide_identity(source)
    width = identity.width
    expected = _result_width(slide)
    if expected is not None and expected != width:
        raise DicomSourceError(f"the DICOM's level 0 is {width} pixels wide, the slide the result is on {expected}: "
                               "these files are not that slide's")
    content = result.data.result if result.data is not None else None
    if isinstance(content, s.PrimitiveResult):
        groups = _primitive_groups(result, content, width)
    elif isinstance(content, s.PatchCollectionResult) and content.content is not None:
        groups = _gallery_groups(content.content, width)
    else:
        groups = []
    if not groups:
        raise ValidationError(f"result on slide {result.slide_id!r} has no shape to annotate (ANN needs at least one)")
    numbers = {k: float(v) for k, v in (result.display_properties or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    # pixels² → µm²: the slide's pixel spacing is in mm (row, column).
    area_scale = identity.pixel_spacing[0] * identity.pixel_spacing[1] * 1e6 if identity.pixel_spacing else None
    algorithm = hd.AlgorithmIdentificationSequence(
        name=_short(algorithm_name), family=codes.cid7162.ArtificialIntelligence,
        version=_short(result.application_version or "unknown"),
    )
    built = []
    for number, group in enumerate(groups, start=1):
        category, kind = class_codes(group.cls, classes)
        n = len(group.coords)
        group_measurements = []
        for name, unit, values in group.extra:
            if name == AREA:
                if area_scale is None:
                    continue  # no pixel spacing: no area in µm²
                values = values * area_scale
            group_measurements.append(Measurements(name=name, values=values.astype(np.float32), unit=unit))
        for key, value in numbers.items():
            name, unit = measurement_codes(key, measurements)
            group_measurements.append(Measurements(name=name, values=np.full(n, value, dtype=np.float32), unit=unit))
        try:
            built.append(AnnotationGroup(
                number=number, uid=hd.UID(), label=group.label, annotated_property_category=category,
                annotated_property_type=kind, graphic_type=group.graphic_type, graphic_data=group.coords,
                algorithm_type=AnnotationGroupGenerationTypeValues.AUTOMATIC, algorithm_identification=algorithm,
                measurements=group_measurements or None, description=group.description,
                display_color=_display_colour(group.stroke),
            ))
        except ValueError as exc:  # highdicom's checks: a point that is not finite, a bad count
            raise ValidationError(f"group {group.label!r} of the result on slide {result.slide_id!r}: {exc}") from None
    try:
        ann = MicroscopyBulkSimpleAnnotations(
            source_images=[identity.dataset], annotation_coordinate_type="2D", annotation_groups=built,
            series_instance_uid=hd.UID(), series_number=series_number, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer=manufacturer, manufacturer_model_name="sectra-sdk to_dicom_ann",
            software_versions=__version__, device_serial_number="none",
            content_description=_short(result.display_result or "Sectra IA-API result"),
        )
    except (AttributeError, KeyError) as exc:
        raise DicomSourceError(f"the slide's DICOM lacks what an annotation copies from it ({exc}): pass the level-0 "
                               "instance's full metadata (WADO-RS /metadata) or its files") from None
    except ValueError as exc:
        raise DicomSourceError(f"highdicom refused the slide's DICOM as the annotation's source: {exc}") from None
    ann.SeriesDescription = _short(f"{algorithm_name} result")
    return ann
