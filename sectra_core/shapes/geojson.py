"""Sectra results ⇄ GeoJSON with QuPath's conventions (what QuPath, wsinfer, HistoQC, CellViT exchange).

Coordinates are level-0 pixels (``x`` right, ``y`` down), i.e. Sectra's width-normalised points
times the image *width* on both axes (spec §2.4). Each feature's ``properties`` follow QuPath:
``objectType`` (``annotation``; ``detection`` for gallery patches), ``classification``
(``{"name", "color": [r, g, b]}``), ``name`` (a label's text), ``color`` (an object's own colour,
from the stroke style) and ``measurements`` (the numeric display properties; a patch's sort key).

What GeoJSON cannot say natively travels in a ``sectra`` member, so ``from_geojson(to_geojson(r))``
gives ``r`` back (within float rounding): the exact style, an arc's centre/radius/angles (its
geometry is a polygon or line tracing it, for other tools), and at the collection level the result's
slide id, display text and properties, application version, context and gallery settings.
Collections from other tools need none of it: classes become styles (one primitive group per class,
its colour as the stroke), points become labels named after the object or its class.

Holes: Sectra polygons have none (spec §5.6), so a hole travels as an outline of its own in the same
group (the viewer draws both rings: a ring-shaped region). Which outlines are holes is said by
``data.context["polygonHoles"]`` (:data:`~sectra_core.app.builders.HOLES_KEY`), written by the
builders for masks (:func:`~sectra_core.shapes.masks.mask_result`) and by :func:`from_geojson` for
interior rings; a result without it (another app's, Sectra's own models') has its holes found by
nesting instead: an outline inside an odd number of outlines of its group is a hole of the smallest
one around it (the even-odd rule, as the viewer's drawing reads). Either way :func:`to_geojson`
writes each hole as an interior ring of the polygon around it, so the class's area is outer minus
hole; a listed hole that lies inside no outline of its group is written as a polygon of its own,
with a :class:`GeometryWarning`.

Orientation (RFC 7946 §3.1.6): exterior rings counter-clockwise, holes clockwise, as the shoelace
formula sees the coordinates written (what shapely's ``is_ccw``/``orient`` and the ``geojson``
package's checks compute). Image ``y`` points down, so an exterior ring looks clockwise on screen.
Where a ring is turned round to get there, the ``sectra`` member says so and :func:`from_geojson`
turns it back, so the round trip keeps Sectra's point order.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union

import msgspec

from .. import schemas as s
from ..app.builders import HOLES_KEY, PatchGalleryBuilder, PrimitiveBuilder, validate_result
from ..errors import ValidationError
from ..geometry import Pyramid

__all__ = ["to_geojson", "from_geojson", "input_from_geojson", "outline_holes", "Slide", "ARC_SEGMENTS", "GeometryWarning"]

#: What gives the slide's size: its ``ImageInfo`` or a :class:`~sectra_core.geometry.Pyramid`.
Slide = Union[s.ImageInfo, Pyramid]
#: Segments of the polygon that traces a full-circle arc for tools that have no arcs.
ARC_SEGMENTS = 64
#: Where class names of primitive groups are kept in ``data.context`` (Sectra has no class field).
CLASSES_KEY = "geojsonClasses"



class GeometryWarning(UserWarning):
    """A shape exported otherwise than its result says: a hole that lies inside no outline of its
    group (written as a polygon of its own), or a hole list in the context that does not fit."""


_HEX = re.compile(r"#([0-9a-fA-F]{6})(?:[0-9a-fA-F]{2})?|#([0-9a-fA-F]{3})[0-9a-fA-F]?")
_RGB = re.compile(r"rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)")


def _pyramid(slide: Slide) -> Pyramid:
    if isinstance(slide, Pyramid):
        return slide
    if isinstance(slide, s.ImageInfo):
        return Pyramid.from_image_info(slide)
    raise ValidationError(f"the slide's size comes from its ImageInfo or a Pyramid, got {type(slide).__name__}")


def _rgb(css: str | None) -> list[int] | None:
    """A CSS colour → QuPath's ``[r, g, b]`` (hex and rgb() forms; names are not guessed)."""
    if not css:
        return None
    css = css.strip()
    if m := _HEX.fullmatch(css):
        if m.group(1):
            return [int(m.group(1)[i:i + 2], 16) for i in (0, 2, 4)]
        return [int(c * 2, 16) for c in m.group(2)]
    if m := _RGB.match(css):
        return [min(255, int(v)) for v in m.groups()]
    return None


def _css(color: Any) -> str | None:
    """QuPath's colour (``[r, g, b]`` or a packed ARGB int, as older QuPath wrote) → ``#rrggbb``."""
    if isinstance(color, int) and not isinstance(color, bool):
        color = [(color >> 16) & 255, (color >> 8) & 255, color & 255]
    if isinstance(color, (list, tuple)) and len(color) >= 3 and all(isinstance(v, (int, float)) for v in color[:3]):
        return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, int(v))) for v in color[:3]))
    return None


# --- rings: orientation and nesting (pure Python: no shapely needed to export) -------------------

#: Distance (level-0 pixels) under which a point counts as on a ring's edge.
_EPS = 1e-6


def _signed_area(ring: Sequence[Sequence[float]]) -> float:
    """The shoelace area of an open ring in the coordinates as written: positive when it runs
    counter-clockwise with the y axis pointing up (RFC 7946's and shapely's sense)."""
    total = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i][0], ring[i][1]
        x1, y1 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        total += x0 * y1 - x1 * y0
    return total / 2


def _flip(ring: list[Any]) -> list[Any]:
    """The same open ring the other way round, from the same first point."""
    return ring[:1] + ring[:0:-1]


def _oriented(ring: list[list[float]], ccw: bool) -> tuple[list[list[float]], bool]:
    """``ring`` (open) turned to run counter-clockwise (``ccw``) or clockwise; whether it was turned."""
    area = _signed_area(ring)
    if area != 0 and (area > 0) != ccw:
        return _flip(ring), True
    return ring, False


class _Ring:
    """One outline of a group, in level-0 pixels, with its bounding box and unsigned area."""

    __slots__ = ("index", "points", "box", "area")

    def __init__(self, index: int, points: list[list[float]]) -> None:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        self.index, self.points = index, points
        self.box = (min(xs), min(ys), max(xs), max(ys))
        self.area = abs(_signed_area(points))


def _side(a: Sequence[float], b: Sequence[float], p: Sequence[float]) -> int:
    """Which side of the line a→b ``p`` is on: 1 left, -1 right, 0 on it (within :data:`_EPS`)."""
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    if abs(cross) <= _EPS * math.hypot(b[0] - a[0], b[1] - a[1]):
        return 0
    return 1 if cross > 0 else -1


def _where(p: Sequence[float], ring: list[list[float]]) -> int:
    """1 if ``p`` is inside ``ring``, 0 on its edge, -1 outside (even-odd ray cast)."""
    x, y = p[0], p[1]
    inside = False
    n = len(ring)
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        if (min(a[0], b[0]) - _EPS <= x <= max(a[0], b[0]) + _EPS and min(a[1], b[1]) - _EPS <= y <= max(a[1], b[1]) + _EPS
                and _side(a, b, p) == 0):
            return 0
        if (a[1] > y) != (b[1] > y) and x < a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]):
            inside = not inside
    return 1 if inside else -1


def _lies_inside(a: _Ring, b: _Ring) -> bool:
    """Whether ring ``a`` lies inside ring ``b``: no edge of one crosses the other's (touching is
    allowed, as in a valid polygon), and a vertex of ``a`` off ``b``'s edge is inside it."""
    if a.area >= b.area:
        return False
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    if ax0 < bx0 - _EPS or ay0 < by0 - _EPS or ax1 > bx1 + _EPS or ay1 > by1 + _EPS:
        return False
    n, m = len(b.points), len(a.points)
    near = [(b.points[i], b.points[(i + 1) % n]) for i in range(n)
            if not (max(b.points[i][0], b.points[(i + 1) % n][0]) < ax0 or min(b.points[i][0], b.points[(i + 1) % n][0]) > ax1
                    or max(b.points[i][1], b.points[(i + 1) % n][1]) < ay0 or min(b.points[i][1], b.points[(i + 1) % n][1]) > ay1)]
    for j in range(m):
        p, q = a.points[j], a.points[(j + 1) % m]
        for r, t in near:
            if _side(p, q, r) * _side(p, q, t) < 0 and _side(r, t, p) * _side(r, t, q) < 0:
                return False  # the rings cross: neither holds the other
    for p in a.points:
        where = _where(p, b.points)
        if where:
            return where > 0
    return False  # every vertex on b's edge: the same ring, not a hole of it


class _Grid:
    """The rings of a group bucketed by the grid cells their boxes cover: the rings that may hold a
    ring are those in the cell of its first vertex (a slide's thousands of nuclei outlines are not
    each tested against all the others)."""

    def __init__(self, rings: list[_Ring]) -> None:
        self.x0 = min(r.box[0] for r in rings)
        self.y0 = min(r.box[1] for r in rings)
        span = max(max(r.box[2] for r in rings) - self.x0, max(r.box[3] for r in rings) - self.y0, 1e-9)
        self.n = max(1, min(128, math.isqrt(len(rings)) + 1))
        self.size = span / self.n
        self.cells: dict[tuple[int, int], list[_Ring]] = {}
        for ring in rings:
            cx0, cy0 = self._cell(ring.box[0], ring.box[1])
            cx1, cy1 = self._cell(ring.box[2], ring.box[3])
            for cx in range(cx0, cx1 + 1):
                for cy in range(cy0, cy1 + 1):
                    self.cells.setdefault((cx, cy), []).append(ring)

    def _cell(self, x: float, y: float) -> tuple[int, int]:
        return (min(self.n - 1, max(0, int((x - self.x0) / self.size))), min(self.n - 1, max(0, int((y - self.y0) / self.size))))

    def around(self, ring: _Ring) -> list[_Ring]:
        """The rings ``ring`` lies inside."""
        point = ring.points[0]
        return [b for b in self.cells.get(self._cell(point[0], point[1]), []) if b is not ring and _lies_inside(ring, b)]


def _structure(rings: list[_Ring], flagged: set[int] | None, where: str) -> list[tuple[int, list[int]]]:
    """The group's polygons: (exterior index, its hole indices), exteriors in index order.

    ``flagged``: the indices the result lists as holes (each goes into the smallest outline not
    listed around it), or None to find holes by nesting (even-odd).
    """
    containers: dict[int, list[int]] = {}
    grid = _Grid(rings) if rings else None
    for a in rings:
        if flagged is not None and a.index not in flagged:
            continue  # an outline the result says is no hole is an exterior, wherever it lies
        assert grid is not None
        containers[a.index] = [b.index for b in sorted(grid.around(a), key=lambda r: r.area)]
    hole_of: dict[int, int] = {}
    if flagged is None:
        depth = {a.index: len(containers[a.index]) for a in rings}
        for index, around in containers.items():
            if depth[index] % 2:
                found = next((j for j in around if depth[j] % 2 == 0), None)
                if found is not None:
                    hole_of[index] = found
    else:
        for index in sorted(flagged):
            found = next((j for j in containers.get(index, []) if j not in flagged), None)
            if found is None:
                warnings.warn(f"{where}: polygon {index} is listed as a hole (data.context[{HOLES_KEY!r}]) but lies "
                              "inside no outline of its group; exported as a polygon of its own", GeometryWarning,
                              stacklevel=4)
            else:
                hole_of[index] = found
    holes: dict[int, list[int]] = {}
    for hole, parent in hole_of.items():
        holes.setdefault(parent, []).append(hole)
    return [(r.index, sorted(holes.get(r.index, []))) for r in rings if r.index not in hole_of]


def _hole_flags(context: Any, items: list[s.PrimitiveItem]) -> list[set[int]] | None:
    """The result's hole list (:data:`HOLES_KEY`), one set per item; None where it has none."""
    listed = context.get(HOLES_KEY) if isinstance(context, dict) else None
    if listed is None:
        return None
    if (isinstance(listed, list) and len(listed) == len(items)
            and all(isinstance(h, list) and all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k < len(item.polygons)
                                                for k in h) for h, item in zip(listed, items))):
        return [set(h) for h in listed]
    warnings.warn(f"data.context[{HOLES_KEY!r}] does not fit the result's {len(items)} item(s) and their polygons "
                  "(was the content changed without it?); holes are found by nesting instead", GeometryWarning, stacklevel=3)
    return None


def outline_holes(result: s.PrimitiveResult, context: Any, width: int, *,
                  pixels: Callable[[int], list[list[list[float]]]] | None = None) -> list[list[tuple[int, list[int]]]]:
    """Per item of ``result``, its polygons as ``(exterior index, hole indices)``, exteriors in
    order: the holes :func:`to_geojson` writes as interior rings (listed in ``context``, else found
    by nesting; see the module docstring), for other exporters (``sectra_core.dicom``) to agree with
    it. ``width``: the slide's level-0 width in pixels (the nesting tolerance is in pixels);
    ``pixels(i)``: item ``i``'s polygons in level-0 pixels, when the caller has them (called only
    for an item whose holes are found by nesting)."""
    items = result.content if isinstance(result.content, list) else [result.content] if result.content else []
    flags = _hole_flags(context, items)
    out: list[list[tuple[int, list[int]]]] = []
    for i, item in enumerate(items):
        if flags is not None and not flags[i]:
            out.append([(k, []) for k in range(len(item.polygons))])  # the list says: no hole here
            continue
        if pixels is not None:
            rings = [_Ring(k, ring) for k, ring in enumerate(pixels(i))]
        else:
            rings = [_Ring(k, [[p.x * width, p.y * width] for p in polygon.points]) for k, polygon in enumerate(item.polygons)]
        out.append(_structure(rings, flags[i] if flags is not None else None, f"item {i}"))
    return out


# --- Sectra → GeoJSON ---------------------------------------------------------------------------


class _Out:
    def __init__(self, pyramid: Pyramid, measurements: dict[str, float]) -> None:
        self.width = pyramid.width
        self.measurements = measurements
        self.features: list[dict[str, Any]] = []

    def xy(self, p: s.Point) -> list[float]:
        return [p.x * self.width, p.y * self.width]

    def ring(self, points: list[s.Point], ccw: bool = True) -> tuple[list[list[float]], bool]:
        """A closed GeoJSON ring (RFC 7946 §3.1.6: repeats its first position), oriented; whether it
        was turned round."""
        ring, turned = _oriented([self.xy(p) for p in points], ccw)
        return ring + [ring[0]], turned

    def polygon(self, points: list[s.Point]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A one-ring Polygon geometry and what its ``sectra`` member adds (whether it was turned)."""
        ring, turned = self.ring(points)
        return {"type": "Polygon", "coordinates": [ring]}, ({"reversed": True} if turned else {})

    def add(self, geometry: dict[str, Any], *, object_type: str = "annotation", name: str | None = None,
            cls: str | None = None, color: list[int] | None = None, sectra: dict[str, Any] | None = None,
            measurements: dict[str, float] | None = None) -> None:
        props: dict[str, Any] = {"objectType": object_type}
        if name is not None:
            props["name"] = name
        if cls is not None:
            props["classification"] = {"name": cls, **({"color": color} if color else {})}
        if color is not None:
            props["color"] = color
        merged = {**self.measurements, **(measurements or {})}
        if merged:
            props["measurements"] = merged
        if sectra:
            props["sectra"] = sectra
        self.features.append({"type": "Feature", "geometry": geometry, "properties": props})


def _arc_geometry(out: _Out, arc: s.Arc) -> dict[str, Any]:
    start, end = arc.start_angle, arc.end_angle
    assert start is not None and end is not None  # fill_nulls gave the defaults
    sweep = end - start
    full = abs(sweep) >= 2 * math.pi - 1e-9
    n = ARC_SEGMENTS if full else max(2, math.ceil(ARC_SEGMENTS * abs(sweep) / (2 * math.pi)))
    cx, cy = out.xy(arc.center)
    r = arc.radius * out.width
    points = [[cx + r * math.cos(start + sweep * i / n), cy + r * math.sin(start + sweep * i / n)] for i in range(n + (0 if full else 1))]
    if full:
        points, _ = _oriented(points, True)  # the exact arc is in the sectra member: no need to say
        return {"type": "Polygon", "coordinates": [points + [points[0]]]}
    return {"type": "LineString", "coordinates": points}


def _style(style: s.Style | None) -> dict[str, Any]:
    return {} if style is None else {"style": msgspec.to_builtins(style)}


def _primitives(out: _Out, result: s.PrimitiveResult, classes: list[Any], context: Any) -> None:
    items = result.content if isinstance(result.content, list) else [result.content] if result.content else []
    flags = _hole_flags(context, items)
    for i, item in enumerate(items):
        cls = classes[i] if i < len(classes) and isinstance(classes[i], str) else None
        color = _rgb(item.style.stroke_style) if item.style else None
        common = {"item": i, **_style(item.style)}
        rings = [_Ring(k, [out.xy(p) for p in polygon.points]) for k, polygon in enumerate(item.polygons)]
        where = f"item {i}" + (f" ({cls})" if cls else "")
        for exterior, holes in _structure(rings, flags[i] if flags is not None else None, where):
            coordinates, turned = [], []
            for k in (exterior, *holes):
                ring, flipped = out.ring(item.polygons[k].points, ccw=k == exterior)
                coordinates.append(ring)
                if flipped:
                    turned.append(k)
            out.add({"type": "Polygon", "coordinates": coordinates}, cls=cls, color=color,
                    sectra={"kind": "polygon", **common, "polygons": [exterior, *holes],
                            **({"reversed": turned} if turned else {})})
        for line in item.polylines:
            out.add({"type": "LineString", "coordinates": [out.xy(p) for p in line.points]}, cls=cls, color=color,
                    sectra={"kind": "polyline", **common})
        for arc in item.arcs:
            exact = {"center": out.xy(arc.center), "radius": arc.radius * out.width,
                     "startAngle": arc.start_angle, "endAngle": arc.end_angle}
            out.add(_arc_geometry(out, arc), cls=cls, color=color, sectra={"kind": "arc", "arc": exact, **common})
        for label in item.labels:
            out.add({"type": "Point", "coordinates": out.xy(label.location)}, name=label.label, cls=cls, color=color,
                    sectra={"kind": "label", **common})


def _gallery(out: _Out, content: s.PatchContent) -> dict[str, Any]:
    for polygon in content.polygons:
        geometry, turned = out.polygon(polygon.points)
        out.add(geometry, sectra={"kind": "region", **turned})
    for patch in content.patches:
        tag = content.tags[patch.tag] if 0 <= patch.tag < len(content.tags) else None
        out.add({"type": "Point", "coordinates": out.xy(patch.position)}, object_type="detection", cls=tag,
                measurements={"sortKeyValue": patch.sort_key_value}, sectra={"kind": "patch", "tag": patch.tag})
    settings = msgspec.to_builtins(content)
    settings.pop("polygons", None)
    settings.pop("patches", None)
    return settings


def to_geojson(shapes: s.Result | s.TaggedPolygonInput | s.MultiAreaInput, slide: Slide) -> dict[str, Any]:
    """A result (or the tagged polygon / areas of a ``create`` invocation's ``input``) as a GeoJSON
    FeatureCollection in level-0 pixels, QuPath's conventions (see the module docstring).

    A hole is an interior ring of the polygon around it (listed in the result's context, else found
    by nesting; the module docstring says how); rings run as RFC 7946 asks. A listed hole inside no
    outline of its group becomes a polygon of its own, with a :class:`GeometryWarning`.

    ``slide``: the slide's ``ImageInfo`` (or :class:`~sectra_core.geometry.Pyramid`), for its width.
    """
    out = _Out(_pyramid(slide), {})
    meta: dict[str, Any]
    if isinstance(shapes, s.TaggedPolygonInput):
        c = shapes.content
        geometry, turned = out.polygon(c.polygon.points)
        out.add(geometry, cls=c.tag, sectra={"kind": "taggedPolygon", "tags": c.tags, "tagIndex": c.tag_index, **turned})
        meta = {"input": "taggedPolygon"}
    elif isinstance(shapes, s.MultiAreaInput):
        for polygon in shapes.content.polygons:
            geometry, turned = out.polygon(polygon.points)
            out.add(geometry, sectra={"kind": "area", **turned})
        meta = {"input": "multiArea"}
    elif isinstance(shapes, s.Result):
        props = shapes.display_properties or {}
        # QuPath measurements are numbers; text display properties stay in the collection's member.
        out.measurements = {k: float(v) for k, v in props.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        content = shapes.data.result
        context = shapes.data.context
        meta = {"slideId": shapes.slide_id, "displayResult": shapes.display_result, "displayProperties": dict(props),
                "applicationVersion": shapes.application_version}
        if isinstance(content, s.PrimitiveResult):
            classes = context.get(CLASSES_KEY, []) if isinstance(context, dict) else []
            _primitives(out, content, classes if isinstance(classes, list) else [], context)
            meta["type"] = "primitive"
        elif isinstance(content, s.PatchCollectionResult):
            meta["type"] = "patchCollection"
            meta["gallery"] = _gallery(out, content.content)
        meta["context"] = context
    else:
        raise ValidationError(
            f"to_geojson takes a Result or a TaggedPolygonInput/MultiAreaInput, got {type(shapes).__name__}"
        )
    return {"type": "FeatureCollection", "features": out.features, "sectra": meta}


# --- GeoJSON → Sectra ---------------------------------------------------------------------------


def _features(collection: Mapping[str, Any] | Iterable[Any]) -> list[dict[str, Any]]:
    if isinstance(collection, Mapping):
        kind = collection.get("type")
        if kind == "FeatureCollection":
            features = collection.get("features")
        elif kind == "Feature":
            features = [collection]
        else:
            raise ValidationError(f"expected a GeoJSON FeatureCollection or Feature, got type {kind!r}")
    elif isinstance(collection, Iterable) and not isinstance(collection, (str, bytes)):
        features = list(collection)  # QuPath's "export as a list of features"
    else:
        raise ValidationError(f"expected a GeoJSON FeatureCollection, Feature or list of Features, got {type(collection).__name__}")
    if not isinstance(features, list):
        raise ValidationError("a FeatureCollection's 'features' must be a list")
    for i, feature in enumerate(features):
        if not isinstance(feature, Mapping) or feature.get("type") != "Feature" or not isinstance(feature.get("geometry"), Mapping):
            raise ValidationError(f"features[{i}] is not a GeoJSON Feature with a geometry")
    return features


def _props(feature: Mapping[str, Any]) -> dict[str, Any]:
    props = feature.get("properties")
    return dict(props) if isinstance(props, Mapping) else {}


def _class_of(props: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A feature's class name and colour (CSS): QuPath's ``classification`` (or older ``classifications``)."""
    cls = props.get("classification")
    name = colour = None
    if isinstance(cls, Mapping):
        name = cls.get("name") if isinstance(cls.get("name"), str) else None
        colour = _css(cls.get("color") if "color" in cls else cls.get("colorRGB"))
        if name is None and isinstance(cls.get("names"), list):  # QuPath derived classes
            name = ": ".join(str(n) for n in cls["names"])
    return name, _css(props.get("color")) or colour


def _position(value: Any, where: str) -> list[float]:
    """A GeoJSON position ``[x, y]`` (an altitude, ``[x, y, z]``, is dropped) as two finite floats,
    else :class:`ValidationError` naming where it is and what a position is."""
    if (isinstance(value, (list, tuple)) and len(value) in (2, 3)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        x, y = float(value[0]), float(value[1])
        if math.isfinite(x) and math.isfinite(y):
            return [x, y]
    raise ValidationError(f"{where}: {_short(value)} is not a position: a position is [x, y] (two finite numbers, "
                          "level-0 pixels; an altitude may follow)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _positions(part: Any, where: str) -> list[list[float]]:
    if not isinstance(part, list):
        raise ValidationError(f"{where}: {_short(part)} is not a list of positions ([[x, y], ...])")
    return [_position(p, where) for p in part]


def _rings(geometry: Mapping[str, Any], where: str) -> tuple[str, list[Any]]:
    """``(kind, parts)`` of a geometry, every position checked (:func:`_position`)."""
    kind, parts = _raw_rings(geometry, where)
    if kind == "points":
        return kind, [_position(p, where) for p in parts]
    return kind, [_positions(p, where) for p in parts]


def _raw_rings(geometry: Mapping[str, Any], where: str) -> tuple[str, list[Any]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if not isinstance(coords, list):
        raise ValidationError(f"{where}: a {kind} geometry needs 'coordinates'")
    if kind == "Polygon":
        return "polygons", list(coords)  # holes drawn as extra outlines: Sectra polygons have no holes
    if kind == "MultiPolygon":
        if not all(isinstance(polygon, list) for polygon in coords):
            raise ValidationError(f"{where}: a MultiPolygon's coordinates are a list of polygons")
        return "polygons", [ring for polygon in coords for ring in polygon]
    if kind == "LineString":
        return "polylines", [coords]
    if kind == "MultiLineString":
        return "polylines", list(coords)
    if kind == "Point":
        return "points", [coords]
    if kind == "MultiPoint":
        return "points", list(coords)
    raise ValidationError(f"{where}: geometry type {kind!r} has no Sectra counterpart")


def _open_ring(ring: list[Any]) -> list[Any]:
    return ring[:-1] if len(ring) > 1 and ring[0] == ring[-1] else ring


def _holes_flags(geometry: Mapping[str, Any]) -> list[bool]:
    """For each ring :func:`_rings` gives of a (Multi)Polygon, whether it is an interior ring (a hole)."""
    coords = geometry["coordinates"]
    polygons = coords if geometry.get("type") == "MultiPolygon" else [coords]
    return [k > 0 for polygon in polygons for k in range(len(polygon))]


def _unturned(ring: list[Any], sectra: Mapping[str, Any]) -> list[Any]:
    """An open ring in the point order Sectra had, where :func:`to_geojson` turned it round."""
    return _flip(ring) if sectra.get("reversed") is True else ring


def _style_of(sectra: Mapping[str, Any], colour: str | None, where: str) -> s.Style | None:
    if isinstance(sectra.get("style"), Mapping):
        try:
            return msgspec.convert(sectra["style"], s.Style)
        except msgspec.ValidationError as exc:
            raise ValidationError(f"{where}: sectra.style: {exc}") from None
    return s.Style(stroke_style=colour) if colour else None


def _primitive_result(
    features: list[dict[str, Any]], pyramid: Pyramid,
) -> tuple[s.PrimitiveResult, list[str | None], list[list[int]]]:
    # One builder per group: the item index a Sectra export recorded, else (class, colour).
    groups: dict[Any, tuple[PrimitiveBuilder, str | None]] = {}
    # A group's polygons wait until every feature is read: an export lists a polygon's holes with
    # it, so Sectra's order (the index each ring records) is restored only at the end.
    polygons: dict[Any, list[tuple[tuple[int, int], list[Any], s.Style | None, bool]]] = {}
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        props = _props(feature)
        sectra = props.get("sectra") if isinstance(props.get("sectra"), Mapping) else {}
        assert isinstance(sectra, Mapping)
        name, colour = _class_of(props)
        style = _style_of(sectra, colour, where)
        key = ("item", sectra["item"]) if isinstance(sectra.get("item"), int) else ("class", name, colour)
        if key not in groups:
            groups[key] = (PrimitiveBuilder(pyramid), name)
        builder = groups[key][0]
        if sectra.get("kind") == "arc" and isinstance(sectra.get("arc"), Mapping):
            arc = sectra["arc"]
            try:
                cx, cy = _position(arc["center"], f"{where}: sectra.arc.center")
                center = pyramid.to_sectra(cx, cy)
                radius, start, end = (float(arc[k]) for k in ("radius", "startAngle", "endAngle"))
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, ValidationError):
                    raise
                raise ValidationError(f"{where}: sectra.arc needs center [x, y], radius, startAngle and endAngle "
                                      f"(numbers): {type(exc).__name__}: {exc}") from None
            builder.arc(center, radius / pyramid.width, start, end, style=style)
            continue
        kind, parts = _rings(feature["geometry"], where)
        if kind == "polygons":
            interior = _holes_flags(feature["geometry"])
            indices = sectra.get("polygons")
            reversed_ = sectra.get("reversed")
            turned: list[Any] = reversed_ if isinstance(reversed_, list) else []
            if not (isinstance(indices, list) and len(indices) == len(parts) and all(isinstance(k, int) for k in indices)):
                indices = None  # not a Sectra export's polygon: keep the features' order
            queue = polygons.setdefault(key, [])
            for n, (part, hole) in enumerate(zip(parts, interior)):
                if not isinstance(part, list):
                    raise ValidationError(f"{where}: a polygon ring is a list of positions")
                ring = _open_ring(part)
                order = (0, indices[n]) if indices is not None else (1, len(queue))
                if indices is not None and indices[n] in turned:
                    ring = _flip(ring)
                queue.append((order, ring, style, hole))
            continue
        for part in parts:
            if kind == "polylines":
                builder.polyline_px(part, style=style)
            else:
                text = props.get("name") or name or "point"
                builder.label_px(part[0], part[1], str(text), style=style)
    items: list[s.PrimitiveItem] = []
    classes: list[str | None] = []
    holes: list[list[int]] = []
    for key, (builder, name) in groups.items():
        for _, ring, style, hole in sorted(polygons.get(key, []), key=lambda entry: entry[0]):
            builder.polygon_px(ring, style=style, hole=hole)
        content = builder.content().content
        assert isinstance(content, list)
        items.extend(content)
        classes.extend([name] * len(content))
        holes.extend(builder.holes())
    return s.PrimitiveResult(content=items), classes, holes


def _gallery_result(features: list[dict[str, Any]], pyramid: Pyramid, settings: Mapping[str, Any]) -> s.PatchCollectionResult:
    if not isinstance(settings, Mapping):
        raise ValidationError(f"sectra.gallery is an object of patch-gallery settings (tags, patchSize...), got {_short(settings)}")
    try:
        template = msgspec.convert(dict(settings), s.PatchContent)
    except msgspec.ValidationError as exc:
        raise ValidationError(f"sectra.gallery: {exc}") from None
    builder = PatchGalleryBuilder(template.tags, pyramid=pyramid, patch_size=template.patch_size or 64,
                                  magnification=template.magnification or 10.0, description=template.description or "")
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        props = _props(feature)
        sectra = props.get("sectra") if isinstance(props.get("sectra"), Mapping) else {}
        assert isinstance(sectra, Mapping)
        kind, parts = _rings(feature["geometry"], where)
        for part in parts:
            if kind == "polygons":
                builder.region_px(_unturned(_open_ring(part), sectra))
            elif kind == "points":
                name, _ = _class_of(props)
                tag: int | str | None = sectra["tag"] if isinstance(sectra.get("tag"), int) else name
                if tag is None:
                    raise ValidationError(f"{where}: a patch needs a class naming one of the tags {template.tags!r}")
                measurements = props.get("measurements")
                sort_key = measurements.get("sortKeyValue", 0.0) if isinstance(measurements, Mapping) else 0.0
                builder.patch_px(tag, part[0], part[1], sort_key=float(sort_key))
            else:
                raise ValidationError(f"{where}: a patch gallery holds region polygons and patch points, not lines")
    content = builder.content()
    content.content.statuses = template.statuses
    content.content.actions = template.actions
    return content


def from_geojson(
    collection: Mapping[str, Any] | Iterable[Any], slide: Slide, *, slide_id: str | None = None,
    display_result: str | None = None, display_properties: dict[str, str | int | float] | None = None,
    application_version: str | None = None,
) -> s.Result:
    """A GeoJSON FeatureCollection (level-0 pixels, e.g. from QuPath) → a validated :class:`Result`.

    Built with :class:`~sectra_core.app.builders.PrimitiveBuilder` (or the gallery builder for a
    collection :func:`to_geojson` made from a patch gallery): width-normalised (spec §2.4), every
    point checked to lie on the slide. Arguments override what the collection's ``sectra`` member
    says; ``slide_id`` defaults to it, or to the ``ImageInfo``'s id.
    """
    pyramid = _pyramid(slide)
    features = _features(collection)
    meta = collection.get("sectra") if isinstance(collection, Mapping) else None
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    slide_id = slide_id or meta.get("slideId") or (slide.id if isinstance(slide, s.ImageInfo) else None)
    if not slide_id:
        raise ValidationError("from_geojson needs slide_id= (or the slide's ImageInfo) to know which slide it draws on")
    context = meta.get("context")
    if meta.get("type") == "patchCollection":
        content: s.ResultContent = _gallery_result(features, pyramid, meta.get("gallery") or {})
    else:
        content, classes, holes = _primitive_result(features, pyramid)
        if any(c is not None for c in classes):
            if context is None:
                context = {}
            if isinstance(context, dict):
                context = {**context, CLASSES_KEY: classes}
        # Interior rings are listed as holes, and so is the absence of any: a same-class outline
        # drawn inside another (two QuPath annotations) stays an outline of its own rather than
        # becoming a hole by nesting. A Sectra export of a result that listed none (its holes were
        # found by nesting) is given back as it was: nesting finds them again.
        nested = meta.get("type") == "primitive" and not (isinstance(context, dict) and HOLES_KEY in context)
        if not nested and isinstance(content.content, list) and any(item.polygons for item in content.content):
            if context is None:
                context = {}
            if isinstance(context, dict):
                context = {**context, HOLES_KEY: holes}
        elif isinstance(context, dict) and HOLES_KEY in context:
            context = {k: v for k, v in context.items() if k != HOLES_KEY}  # it had holes; they are gone
    if display_properties is None:
        display_properties = meta.get("displayProperties") or {}
        if not isinstance(display_properties, Mapping):
            raise ValidationError(f"sectra.displayProperties is an object of names and values, got {_short(display_properties)}")
    result = s.Result(
        slide_id=slide_id,
        display_result=display_result if display_result is not None else meta.get("displayResult"),
        display_properties=dict(display_properties),
        application_version=application_version if application_version is not None else meta.get("applicationVersion"),
        data=s.ResultData(context=context if context is not None else {}, result=content),
    )
    validate_result(result, max_y=pyramid.max_y)
    return result


def input_from_geojson(collection: Mapping[str, Any] | Iterable[Any], slide: Slide) -> s.TaggedPolygonInput | s.MultiAreaInput:
    """The reverse of :func:`to_geojson` for invocation input: one polygon → a tagged polygon
    (tags from ``sectra`` or its class), several → a multi-area input (e.g. to script a mock invocation)."""
    pyramid = _pyramid(slide)
    polygons: list[s.Polygon] = []
    tags: list[str] | None = None
    tag_index: int | None = None
    for i, feature in enumerate(_features(collection)):
        props = _props(feature)
        sectra = props.get("sectra") if isinstance(props.get("sectra"), Mapping) else {}
        assert isinstance(sectra, Mapping)
        kind, parts = _rings(feature["geometry"], f"features[{i}]")
        if kind != "polygons":
            raise ValidationError(f"features[{i}]: invocation input holds polygons only, got {feature['geometry'].get('type')}")
        for part in parts:
            b = PrimitiveBuilder(pyramid).polygon_px(_unturned(_open_ring(part), sectra))
            content = b.content().content
            assert isinstance(content, list)
            polygons.append(content[0].polygons[0])
        if sectra.get("kind") == "taggedPolygon":
            tags, tag_index = sectra.get("tags"), sectra.get("tagIndex")
        elif (name := _class_of(props)[0]) is not None and tags is None:
            tags, tag_index = [name], 0
    if not polygons:
        raise ValidationError("input_from_geojson found no polygon")
    if len(polygons) == 1 and (tags is not None or _meta_input(collection) == "taggedPolygon"):
        return s.TaggedPolygonInput(content=s.TaggedPolygonContent(polygon=polygons[0], tags=tags, tag_index=tag_index))
    return s.MultiAreaInput(content=s.MultiAreaContent(polygons=polygons))


def _meta_input(collection: Any) -> Any:
    meta = collection.get("sectra") if isinstance(collection, Mapping) else None
    return meta.get("input") if isinstance(meta, Mapping) else None
