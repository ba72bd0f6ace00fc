"""What a result looks like on a slide: the one geometry the viewer and the renderer both draw.

Sectra draws a result's primitives (spec §5.6) over the slide: polygons, polylines, arcs and
labels, each item with its ``style`` (``strokeStyle``, ``fillStyle``, stroke ``size`` in screen
pixels); a patch collection shows its polygons and a gallery of square patches centred on their
``position``. Every point is width-normalised (spec §2.4): **both** ``x`` and ``y`` are multiplied
by the image *width* to get level-0 pixels. This module turns results into :class:`Shape` values in
level-0 pixels, once: the mock's viewer (``sectra_mock.viewer``) serves them as JSON for its SVG
overlay, and ``sectra_transports.render`` paints them with Pillow, so the two cannot disagree on
where a point lies or what colour it has.

Pure code: no I/O, no Pillow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from . import schemas as s
from .errors import ValidationError
from .geometry import Pyramid

__all__ = [
    "RGBA", "DrawStyle", "Shape", "parse_colour", "draw_style", "result_shapes", "input_shapes",
    "patch_side", "shape_json", "View", "DEFAULT_STROKE", "DEFAULT_SIZE",
]

#: An sRGB colour with alpha, each 0..255.
RGBA = tuple[int, int, int, int]

#: The stroke of an item without ``strokeStyle`` (Sectra does not document its default).
DEFAULT_STROKE: RGBA = (0, 255, 0, 255)
#: The stroke size of an item without ``size``, in screen (output) pixels.
DEFAULT_SIZE = 2
#: Patch collections and the highlight of a selected patch.
PATCH_STROKE: RGBA = (0, 160, 255, 255)
INPUT_STROKE: RGBA = (255, 0, 255, 255)

_NAMED: dict[str, RGBA] = {
    "black": (0, 0, 0, 255), "white": (255, 255, 255, 255), "red": (255, 0, 0, 255),
    "green": (0, 128, 0, 255), "lime": (0, 255, 0, 255), "blue": (0, 0, 255, 255),
    "yellow": (255, 255, 0, 255), "cyan": (0, 255, 255, 255), "aqua": (0, 255, 255, 255),
    "magenta": (255, 0, 255, 255), "fuchsia": (255, 0, 255, 255), "orange": (255, 165, 0, 255),
    "purple": (128, 0, 128, 255), "gray": (128, 128, 128, 255), "grey": (128, 128, 128, 255),
    "pink": (255, 192, 203, 255), "brown": (165, 42, 42, 255), "transparent": (0, 0, 0, 0),
}
_FUNC = re.compile(r"^rgba?\(\s*([^)]*)\)$")


def parse_colour(css: str | None, default: RGBA | None) -> RGBA | None:
    """A CSS colour as Sectra's clients accept it (``#rgb``, ``#rgba``, ``#rrggbb``,
    ``#rrggbbaa``, ``rgb(r, g, b)``, ``rgba(r, g, b, a)``, common names) → RGBA; ``default`` for
    ``None``, an empty string or anything unreadable (a browser ignores a bad colour too)."""
    if not css or not isinstance(css, str):
        return default
    text = css.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    if text.startswith("#"):
        digits = text[1:]
        if not all(c in "0123456789abcdef" for c in digits):
            return default
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        if len(digits) == 6:
            digits += "ff"
        if len(digits) != 8:
            return default
        r, g, b, a = (int(digits[i:i + 2], 16) for i in range(0, 8, 2))
        return r, g, b, a
    match = _FUNC.match(text)
    if match:
        parts = [p.strip() for p in match.group(1).replace("/", ",").split(",") if p.strip()]
        try:
            rgb = [_channel(p) for p in parts[:3]]
            alpha = _alpha(parts[3]) if len(parts) > 3 else 255
        except ValueError:
            return default
        if len(rgb) == 3:
            return rgb[0], rgb[1], rgb[2], alpha
    return default


def _channel(text: str) -> int:
    value = float(text[:-1]) * 2.55 if text.endswith("%") else float(text)
    return max(0, min(255, round(value)))


def _alpha(text: str) -> int:
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    return max(0, min(255, round(value * 255)))


@dataclass(frozen=True, slots=True)
class DrawStyle:
    """How an item is drawn: stroke colour, fill colour (None: not filled), stroke width in
    screen (output) pixels, which does not grow with zoom, as in Sectra's viewer."""

    stroke: RGBA = DEFAULT_STROKE
    fill: RGBA | None = None
    width: int = DEFAULT_SIZE


def draw_style(style: s.Style | None, default_stroke: RGBA = DEFAULT_STROKE) -> DrawStyle:
    """An item's ``style`` → :class:`DrawStyle` (missing parts take the defaults)."""
    if style is None:
        return DrawStyle(stroke=default_stroke)
    stroke = parse_colour(style.stroke_style, default_stroke) or default_stroke
    fill = parse_colour(style.fill_style, None)
    width = style.size if isinstance(style.size, int) and style.size > 0 else DEFAULT_SIZE
    return DrawStyle(stroke=stroke, fill=fill if fill is None or fill[3] > 0 else None, width=min(width, 64))


ShapeKind = Literal["polygon", "polyline", "arc", "label", "patch"]


@dataclass(frozen=True, slots=True)
class Shape:
    """One thing to draw, in level-0 pixels.

    ``polygon``/``polyline``: ``points``; ``arc``: ``points[0]`` is the centre, ``radius`` in
    level-0 pixels, ``start``/``end`` in radians, clockwise from +x on screen (y points down);
    ``label``: ``points[0]`` is the text's upper-left corner; ``patch``: a square gallery patch,
    ``points`` its four corners, ``index`` its place in the collection's ``patches``.
    """

    kind: ShapeKind
    points: tuple[tuple[float, float], ...]
    style: DrawStyle
    text: str = ""
    radius: float = 0.0
    start: float = 0.0
    end: float = 2 * math.pi
    index: int = -1

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in level-0 pixels (a label's text size is not known here)."""
        if self.kind == "arc":
            (cx, cy), r = self.points[0], self.radius
            return cx - r, cy - r, cx + r, cy + r
        xs = [p[0] for p in self.points]
        ys = [p[1] for p in self.points]
        return min(xs), min(ys), max(xs), max(ys)


def _pixels(points: Iterable[s.Point], width: int) -> tuple[tuple[float, float], ...]:
    # Spec §2.4: y is divided by the image WIDTH too, so both axes multiply by the width.
    return tuple((p.x * width, p.y * width) for p in points)


def _items(content: Any) -> list[s.PrimitiveItem]:
    # Spec §5.6 [C]: content is a list of items, or one item object (Sectra's own examples).
    if content is None:
        return []
    return [content] if isinstance(content, s.PrimitiveItem) else list(content)


def patch_side(content: s.PatchContent, pyramid: Pyramid) -> float:
    """A gallery patch's side in level-0 pixels: ``patchSize`` pixels at ``magnification``
    (a 10x patch on a 40x scan covers four times as many level-0 pixels). The scan's objective is
    taken from ``micronsPerPixel`` (10 µm / mpp, 0.25 µm/px ≈ 40x); 40x when the slide has none."""
    size = content.patch_size if content.patch_size and content.patch_size > 0 else 64
    magnification = content.magnification if content.magnification and content.magnification > 0 else None
    if magnification is None:
        return float(size)
    objective = 10.0 / pyramid.microns_per_pixel if pyramid.microns_per_pixel else 40.0
    return float(size) * max(objective / magnification, 1e-6)


def result_shapes(result: s.Result, pyramid: Pyramid) -> list[Shape]:
    """Every shape of one result, in level-0 pixels, in the order Sectra draws them (items in
    order; in each item polygons, polylines, arcs, then labels on top)."""
    data = result.data
    content = data.result if data is not None else None
    width = pyramid.width
    shapes: list[Shape] = []
    if isinstance(content, s.PrimitiveResult):
        for item in _items(content.content):
            style = draw_style(item.style)
            for polygon in item.polygons or ():
                if len(polygon.points) >= 2:
                    shapes.append(Shape("polygon", _pixels(polygon.points, width), style))
            for line in item.polylines or ():
                if len(line.points) >= 2:
                    shapes.append(Shape("polyline", _pixels(line.points, width), DrawStyle(style.stroke, None, style.width)))
            for arc in item.arcs or ():
                start = arc.start_angle if arc.start_angle is not None else 0.0
                end = arc.end_angle if arc.end_angle is not None else 2 * math.pi
                shapes.append(Shape("arc", _pixels([arc.center], width), style, radius=abs(arc.radius) * width,
                                    start=start, end=end))
            for label in item.labels or ():
                shapes.append(Shape("label", _pixels([label.location], width), style, text=label.label))
    elif isinstance(content, s.PatchCollectionResult) and content.content is not None:
        gallery = content.content
        outline = DrawStyle(PATCH_STROKE, None, DEFAULT_SIZE)
        for polygon in gallery.polygons or ():
            if len(polygon.points) >= 2:
                shapes.append(Shape("polygon", _pixels(polygon.points, width), outline))
        half = patch_side(gallery, pyramid) / 2
        thin = DrawStyle(PATCH_STROKE, None, 1)
        for index, patch in enumerate(gallery.patches or ()):
            (cx, cy), = _pixels([patch.position], width)
            corners = ((cx - half, cy - half), (cx + half, cy - half), (cx + half, cy + half), (cx - half, cy + half))
            tags = gallery.tags or []
            tag = tags[patch.tag] if 0 <= patch.tag < len(tags) else str(patch.tag)
            shapes.append(Shape("patch", corners, thin, text=tag, index=index))
    return shapes


def input_shapes(invocation_input: Any, pyramid: Pyramid) -> list[Shape]:
    """What the user drew to start an analysis (a ``create`` input, spec §5.3): a tagged polygon
    with its tag as label, or several areas; nothing for a whole-slide input."""
    style = DrawStyle(INPUT_STROKE, None, DEFAULT_SIZE)
    width = pyramid.width
    if isinstance(invocation_input, s.TaggedPolygonInput):
        content = invocation_input.content
        points = _pixels(content.polygon.points, width)
        shapes = [Shape("polygon", points, style)]
        if content.tag is not None and points:
            shapes.append(Shape("label", points[:1], style, text=content.tag))
        return shapes
    if isinstance(invocation_input, s.MultiAreaInput):
        return [Shape("polygon", _pixels(p.points, width), style) for p in invocation_input.content.polygons]
    return []


def _hex(colour: RGBA) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour[:3])


def shape_json(shape: Shape) -> dict[str, Any]:
    """A shape as the viewer's overlay reads it (level-0 pixels, CSS colours, opacity apart)."""
    style = shape.style
    out: dict[str, Any] = {
        "kind": shape.kind, "points": [[round(x, 2), round(y, 2)] for x, y in shape.points],
        "stroke": _hex(style.stroke), "strokeOpacity": round(style.stroke[3] / 255, 3), "width": style.width,
    }
    if style.fill is not None:
        out["fill"] = _hex(style.fill)
        out["fillOpacity"] = round(style.fill[3] / 255, 3)
    if shape.text:
        out["text"] = shape.text
    if shape.kind == "arc":
        out.update(radius=round(shape.radius, 2), start=shape.start, end=shape.end)
    if shape.index >= 0:
        out["index"] = shape.index
    return out


@dataclass(frozen=True, slots=True)
class View:
    """A window on the slide: level-0 region ``(x, y, width, height)`` drawn at ``scale`` output
    pixels per level-0 pixel. :meth:`to_view` is the one transform both drawers apply."""

    x: float
    y: float
    width: float
    height: float
    scale: float

    @classmethod
    def of(cls, pyramid: Pyramid, *, downsample: float | None = None,
           region: tuple[float, float, float, float] | None = None, max_side: int = 2048) -> View:
        """The view of ``region`` (level-0 ``x, y, w, h``; default the whole slide) at
        ``downsample`` level-0 pixels per output pixel (default: the smallest power of two at
        which it fits in ``max_side`` pixels, as an OpenSlide level would)."""
        x, y, w, h = region if region is not None else (0.0, 0.0, float(pyramid.width), float(pyramid.height))
        if w <= 0 or h <= 0:
            raise ValidationError(f"a region needs a positive width and height, got {w}x{h}")
        if downsample is None:
            downsample = 1.0
            while max(w, h) / downsample > max_side:
                downsample *= 2
        if not downsample > 0:
            raise ValidationError(f"downsample must be positive, got {downsample}")
        return cls(x, y, w, h, 1.0 / downsample)

    @property
    def size(self) -> tuple[int, int]:
        """The output size in pixels (at least 1x1)."""
        return max(1, math.ceil(self.width * self.scale - 1e-9)), max(1, math.ceil(self.height * self.scale - 1e-9))

    def to_view(self, x: float, y: float) -> tuple[float, float]:
        """A level-0 pixel position → output pixel position."""
        return (x - self.x) * self.scale, (y - self.y) * self.scale

    def meets(self, shape: Shape, margin: float = 0.0) -> bool:
        """Whether ``shape`` may show in this view (its bounds meet the region)."""
        x0, y0, x1, y1 = shape.bounds()
        if shape.kind == "label":
            x1, y1 = x1 + 1e9, y1 + 1e9  # text extends right and down from its corner
        return x1 >= self.x - margin and y1 >= self.y - margin and x0 <= self.x + self.width + margin \
            and y0 <= self.y + self.height + margin
