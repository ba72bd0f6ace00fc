"""Result builders: primitives and patch galleries, validated before anything reaches Sectra.

Sectra stores whatever an app sends and the viewer draws it, or silently does not. These builders
catch the mistakes at the line that makes them: a polygon with fewer than 3 points, a point outside
the slide (both axes are divided by the image *width*, spec §2.4, so ``y`` ends at height/width), a
patch whose tag index is out of range, a gallery without a region. :func:`validate_result` applies
the same rules to a :class:`~sectra_core.schemas.Result` built by hand.

    b = PrimitiveBuilder(pyramid)                  # pyramid: optional; enables pixel input
    b.polygon_px([(0, 0), (800, 0), (800, 600)], level=12, style=s.Style(stroke_style="#00FF00"))
    b.label((0.1, 0.1), "Tumour 12 %")
    result = b.build(slide_id, "Tumour 12 %", application_version="1.0.0")
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Union

from .. import schemas as s
from ..errors import ValidationError
from ..geometry import Pyramid
from .rules import check_result, errors, is_css_colour

__all__ = ["PointLike", "PrimitiveBuilder", "PatchGalleryBuilder", "validate_result", "HOLES_KEY"]

#: Where a primitive result says which of its polygons are holes, in ``data.context``: one list per
#: item (in content order) of the indices of its hole polygons. Sectra polygons have no holes (spec
#: §5.6): a hole is drawn as an outline of its own, and this key lets a GeoJSON export make it an
#: interior ring again (see :func:`sectra_core.shapes.to_geojson`).
HOLES_KEY = "polygonHoles"

#: A point in Sectra's width-normalised coordinates: a :class:`~sectra_core.schemas.Point` or ``(x, y)``.
PointLike = Union[s.Point, Sequence[float]]

_SLACK = 1e-9


def _snap(value: float, limit: float, tolerance: float) -> float:
    if limit < value <= limit + tolerance:
        return limit
    if -tolerance <= value < 0:
        return 0.0
    return value


def _point(value: PointLike, where: str) -> s.Point:
    if isinstance(value, s.Point):
        point = value
    else:
        try:
            x, y = value
            point = s.Point(x=float(x), y=float(y))
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: a point is (x, y) or a Point, got {value!r}") from None
    if not (math.isfinite(point.x) and math.isfinite(point.y)):
        raise ValidationError(f"{where}: coordinates must be finite numbers, got ({point.x}, {point.y})")
    return point


def _inside(point: s.Point, max_y: float | None, where: str) -> None:
    # Without the slide's size only x (0..1) and y >= 0 can be checked.
    y_limit = math.inf if max_y is None else max_y
    if not (-_SLACK <= point.x <= 1 + _SLACK and -_SLACK <= point.y <= y_limit + _SLACK):
        bound = "" if max_y is None else f" (y runs to height/width = {max_y:.4f})"
        raise ValidationError(
            f"{where}: point ({point.x:.6g}, {point.y:.6g}) lies outside the slide{bound}; "
            "Sectra divides both axes by the image width (spec §2.4)"
        )


def _points(values: Iterable[PointLike], minimum: int, what: str, max_y: float | None, where: str) -> list[s.Point]:
    points = [_point(v, where) for v in values]
    if len(points) < minimum:
        raise ValidationError(f"{where}: a {what} needs at least {minimum} points, got {len(points)}")
    for p in points:
        _inside(p, max_y, where)
    return points


def _style(style: s.Style | None, where: str) -> None:
    if style is None:
        return
    for name in ("stroke_style", "fill_style"):
        value = getattr(style, name)
        if value is not None and not is_css_colour(value):
            raise ValidationError(f"{where}: {name} {value!r} is not a CSS colour (e.g. '#FFA500')")
    if style.size is not None and style.size < 0:
        raise ValidationError(f"{where}: style size must be >= 0, got {style.size}")


def _style_key(style: s.Style | None) -> tuple[Any, ...]:
    return (None,) if style is None else (style.stroke_style, style.fill_style, style.size)


class _Builder:
    def __init__(self, pyramid: Pyramid | None) -> None:
        self.pyramid = pyramid

    @property
    def max_y(self) -> float | None:
        return None if self.pyramid is None else self.pyramid.max_y

    def _px(self, pixels: Iterable[Sequence[float]], level: int | None) -> list[s.Point]:
        pyramid = self.pyramid
        if pyramid is None:
            raise ValidationError("pixel coordinates need the slide's pyramid: pass pyramid= to the builder")
        # Level sizes are rounded up, so an edge tile can end up to one level pixel past the
        # slide; pull such points back onto the edge instead of refusing them.
        tolerance = (1.0 if level is None else 1.0 / pyramid.scale(level)) / pyramid.width
        points = []
        for x, y in pixels:
            p = pyramid.to_sectra(float(x), float(y), level)
            points.append(s.Point(x=_snap(p.x, 1.0, tolerance), y=_snap(p.y, pyramid.max_y, tolerance)))
        return points

    @staticmethod
    def _result(
        slide_id: str, display_result: str, content: s.ResultContent, *,
        display_properties: dict[str, str | int | float] | None, application_version: str | None,
        context: Any, max_y: float | None,
    ) -> s.Result:
        result = s.Result(
            slide_id=slide_id, display_result=display_result,
            display_properties=dict(display_properties or {}),
            application_version=application_version,
            data=s.ResultData(context=context if context is not None else {}, result=content),
        )
        validate_result(result, max_y=max_y)
        return result


class PrimitiveBuilder(_Builder):
    """Collects polygons, polylines, arcs and labels, grouped by style, into a ``primitive`` result.

    Points are in Sectra's width-normalised coordinates; the ``*_px`` variants take pixels at a
    DZI level (full resolution by default) and need ``pyramid``. With a pyramid every point is
    also checked to lie on the slide.
    """

    def __init__(self, pyramid: Pyramid | None = None) -> None:
        super().__init__(pyramid)
        self._items: dict[tuple[Any, ...], s.PrimitiveItem] = {}
        self._holes: dict[tuple[Any, ...], list[int]] = {}

    def _item(self, style: s.Style | None) -> s.PrimitiveItem:
        key = _style_key(style)
        item = self._items.get(key)
        if item is None:
            _style(style, "style")
            item = self._items[key] = s.PrimitiveItem(style=style)
        return item

    def __len__(self) -> int:
        return sum(len(i.polygons) + len(i.polylines) + len(i.arcs) + len(i.labels) for i in self._items.values())

    def polygon(self, points: Iterable[PointLike], *, style: s.Style | None = None, hole: bool = False) -> PrimitiveBuilder:
        """Add a closed polygon (at least 3 points).

        ``hole=True``: the outline of a hole in a polygon of the same style. Sectra draws it as an
        outline like any other; :meth:`build` records it in ``data.context`` (:data:`HOLES_KEY`)
        so a GeoJSON export writes it as an interior ring.
        """
        pts = _points(points, 3, "polygon", self.max_y, "polygon")
        item = self._item(style)
        if hole:
            self._holes.setdefault(_style_key(style), []).append(len(item.polygons))
        item.polygons.append(s.Polygon(points=pts))
        return self

    def polygon_px(
        self, pixels: Iterable[Sequence[float]], level: int | None = None, *, style: s.Style | None = None,
        hole: bool = False,
    ) -> PrimitiveBuilder:
        """Add a polygon given in pixels at ``level`` (``hole`` as in :meth:`polygon`)."""
        return self.polygon(self._px(pixels, level), style=style, hole=hole)

    def rectangle(self, x0: float, y0: float, x1: float, y1: float, *, style: s.Style | None = None) -> PrimitiveBuilder:
        """Add an axis-aligned rectangle in Sectra coordinates."""
        return self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], style=style)

    def polyline(self, points: Iterable[PointLike], *, style: s.Style | None = None) -> PrimitiveBuilder:
        """Add an open line (at least 2 points)."""
        pts = _points(points, 2, "polyline", self.max_y, "polyline")
        self._item(style).polylines.append(s.Polyline(points=pts))
        return self

    def polyline_px(self, pixels: Iterable[Sequence[float]], level: int | None = None, *, style: s.Style | None = None) -> PrimitiveBuilder:
        """Add a polyline given in pixels at ``level``."""
        return self.polyline(self._px(pixels, level), style=style)

    def arc(
        self, center: PointLike, radius: float, start_angle: float = 0.0, end_angle: float = 2 * math.pi,
        *, style: s.Style | None = None,
    ) -> PrimitiveBuilder:
        """Add an arc (a full circle by default); radius width-normalised, angles in radians."""
        c = _point(center, "arc")
        _inside(c, self.max_y, "arc")
        if not (math.isfinite(radius) and radius > 0):
            raise ValidationError(f"arc: radius must be a positive number, got {radius!r}")
        if not (math.isfinite(start_angle) and math.isfinite(end_angle)):
            raise ValidationError("arc: angles must be finite numbers (radians)")
        self._item(style).arcs.append(s.Arc(center=c, radius=radius, start_angle=start_angle, end_angle=end_angle))
        return self

    def label(self, location: PointLike, text: str, *, style: s.Style | None = None) -> PrimitiveBuilder:
        """Add a text label; ``location`` is its upper-left corner."""
        loc = _point(location, "label")
        _inside(loc, self.max_y, "label")
        if not isinstance(text, str) or not text.strip():
            raise ValidationError("label: the text must be a non-empty string")
        self._item(style).labels.append(s.Label(location=loc, label=text))
        return self

    def label_px(self, x: float, y: float, text: str, level: int | None = None, *, style: s.Style | None = None) -> PrimitiveBuilder:
        """Add a label at a pixel position at ``level``."""
        return self.label(self._px([(x, y)], level)[0], text, style=style)

    def content(self) -> s.PrimitiveResult:
        """The collected primitives as result content (one item per style, in first-use order)."""
        return s.PrimitiveResult(content=list(self._items.values()))

    def holes(self) -> list[list[int]]:
        """Per item of :meth:`content`, the indices of the polygons added with ``hole=True``."""
        return [list(self._holes.get(key, [])) for key in self._items]

    def build(
        self, slide_id: str, display_result: str, *,
        display_properties: dict[str, str | int | float] | None = None,
        application_version: str | None = None, context: Any = None,
    ) -> s.Result:
        """A validated :class:`~sectra_core.schemas.Result` ready to store.

        If holes were added, ``context`` (a dict, or None for a new one) also gets
        :data:`HOLES_KEY`; a context of another JSON type is kept as it is, and an export then
        finds the holes by their nesting instead.
        """
        holes = self.holes()
        if any(holes) and (context is None or isinstance(context, dict)):
            context = {**(context or {}), HOLES_KEY: holes}
        return self._result(
            slide_id, display_result, self.content(), display_properties=display_properties,
            application_version=application_version, context=context, max_y=self.max_y,
        )


class PatchGalleryBuilder(_Builder):
    """Builds a ``patchCollection`` result: regions, patches sorted into ``tags``, buttons, statuses.

    A gallery needs at least one region polygon (the analysed area, spec §5.6). Patches name their
    tag by index or by text. Sectra hints at no more than 5 tags; the builder does not enforce it.
    """

    def __init__(
        self, tags: Sequence[str], *, pyramid: Pyramid | None = None, patch_size: int = 64,
        magnification: float = 10.0, description: str = "",
    ) -> None:
        super().__init__(pyramid)
        tags = list(tags)
        if not tags or any(not isinstance(t, str) or not t.strip() for t in tags):
            raise ValidationError("a patch gallery needs at least one tag, each a non-empty string")
        if len(set(tags)) != len(tags):
            raise ValidationError(f"tags must be unique, got {tags!r}")
        if not (isinstance(patch_size, int) and patch_size > 0):
            raise ValidationError(f"patch_size must be a positive number of pixels, got {patch_size!r}")
        if not (math.isfinite(magnification) and magnification > 0):
            raise ValidationError(f"magnification must be positive, got {magnification!r}")
        self._content = s.PatchContent(
            description=description, tags=tags, patch_size=patch_size, magnification=magnification,
        )

    def __len__(self) -> int:
        return len(self._content.patches)

    def region(self, points: Iterable[PointLike]) -> PatchGalleryBuilder:
        """Add a region polygon (the area the patches come from)."""
        self._content.polygons.append(s.Polygon(points=_points(points, 3, "polygon", self.max_y, "region")))
        return self

    def region_px(self, pixels: Iterable[Sequence[float]], level: int | None = None) -> PatchGalleryBuilder:
        """Add a region given in pixels at ``level``."""
        return self.region(self._px(pixels, level))

    def _tag(self, tag: int | str) -> int:
        tags = self._content.tags
        if isinstance(tag, str):
            try:
                return tags.index(tag)
            except ValueError:
                raise ValidationError(f"patch: unknown tag {tag!r}; tags are {tags!r}") from None
        if not (isinstance(tag, int) and 0 <= tag < len(tags)):
            raise ValidationError(f"patch: tag index {tag!r} is outside 0..{len(tags) - 1}")
        return tag

    def patch(self, tag: int | str, position: PointLike, sort_key: float = 0.0) -> PatchGalleryBuilder:
        """Add a patch centred on ``position``, sorted into ``tag``; the gallery orders by ``sort_key``."""
        pos = _point(position, "patch")
        _inside(pos, self.max_y, "patch")
        if not math.isfinite(sort_key):
            raise ValidationError("patch: sort_key must be a finite number")
        self._content.patches.append(s.Patch(tag=self._tag(tag), position=pos, sort_key_value=float(sort_key)))
        return self

    def patch_px(self, tag: int | str, x: float, y: float, level: int | None = None, sort_key: float = 0.0) -> PatchGalleryBuilder:
        """Add a patch centred on a pixel position at ``level``."""
        return self.patch(tag, self._px([(x, y)], level)[0], sort_key)

    def action(self, id: str, name: str, tooltip: str = "") -> PatchGalleryBuilder:
        """Add a button; a ``modify`` invocation with its ``state == 1`` means it was pressed."""
        if not id or any(a.id == id for a in self._content.actions or ()):
            raise ValidationError(f"action ids must be unique and non-empty, got {id!r}")
        assert self._content.actions is not None
        self._content.actions.append(s.PatchAction(id=id, name=name, tooltip=tooltip))
        return self

    def status(self, name: str, value: bool = True, message: str = "") -> PatchGalleryBuilder:
        """Set a status flag such as ``allowVerify``."""
        self._content.statuses[name] = s.PatchStatus(value=value, message=message)
        return self

    def content(self) -> s.PatchCollectionResult:
        """The gallery as result content."""
        return s.PatchCollectionResult(content=self._content)

    def build(
        self, slide_id: str, display_result: str, *,
        display_properties: dict[str, str | int | float] | None = None,
        application_version: str | None = None, context: Any = None,
    ) -> s.Result:
        """A validated :class:`~sectra_core.schemas.Result` ready to store."""
        return self._result(
            slide_id, display_result, self.content(), display_properties=display_properties,
            application_version=application_version, context=context, max_y=self.max_y,
        )


def validate_result(result: s.Result, *, max_y: float | None = None, image: s.ImageInfo | None = None) -> None:
    """Raise :class:`ValidationError` (with the JSON path) if ``result`` would draw wrongly.

    The rules are :func:`sectra_core.app.rules.check_result`'s, the same the mock checks every
    stored result with; only findings of severity ``"error"`` raise (warnings, such as a
    self-intersecting polygon or a missing ``applicationVersion``, do not). ``max_y`` (height/width
    of the slide) or ``image`` (the slide's info) enables the bottom-edge check.
    """
    if not isinstance(result, s.Result):
        raise ValidationError(f"expected a Result, got {type(result).__name__}")
    found = errors(check_result(result, max_y=max_y, image=image))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        first = found[0]
        raise ValidationError(f"{first.path}: {first.message} [{first.rule}]{more}")
