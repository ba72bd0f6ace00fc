"""Results drawn over the slide, as pictures: ``render_results(slide, results)`` → ``PIL.Image``.

Works against any server the client reaches (the mock or a real Sectra): the slide's pixels come
from ``client.open_slide`` (blocking, or ``await`` :func:`arender_results` on trio), the shapes
from :mod:`sectra_core.drawing`, the same geometry and styles the mock's viewer draws, so a
picture and the viewer cannot disagree. Stroke widths and label sizes are in output pixels (they
do not grow with zoom, as in Sectra's viewer). A ``PIL.Image`` shows itself in Jupyter
(``_repr_png_``); so does :class:`RenderedView`, which also keeps where its pixels came from.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sectra_core import schemas as s
from sectra_core.drawing import Shape, View, result_shapes
from sectra_core.errors import ValidationError
from sectra_core.geometry import Pyramid
from sectra_core.regions import pillow

__all__ = [
    "render_results", "arender_results", "render_view", "arender_view", "draw_shapes", "plan_view", "RenderedView",
    "Region",
]

#: ``(x, y, width, height)`` in level-0 pixels.
Region = tuple[float, float, float, float]
#: The longest side of a picture when neither level nor mpp is given.
DEFAULT_MAX_SIDE = 2048


class _Slide(Protocol):
    pyramid: Pyramid

    @property
    def level_count(self) -> int: ...


@dataclass(frozen=True)
class RenderedView:
    """A rendered picture and where it lies on the slide (``view``: level-0 region and scale);
    shows as a PNG in Jupyter."""

    image: Any
    view: View
    slide_id: str

    def _repr_png_(self) -> bytes:
        import io

        buffer = io.BytesIO()
        self.image.save(buffer, format="PNG")
        return buffer.getvalue()

    def save(self, path: Any) -> None:
        """Save the picture (format from the file name, as ``PIL.Image.save``)."""
        self.image.save(path)


def _as_list(results: s.Result | Iterable[s.Result]) -> list[s.Result]:
    items = [results] if isinstance(results, s.Result) else list(results)
    for item in items:
        if not isinstance(item, s.Result):
            raise ValidationError(f"render_results draws Result values, got {type(item).__name__}")
    return items


def plan_view(
    slide: _Slide, *, level: int | None = None, region: Region | None = None, mpp: float | None = None,
    max_side: int = DEFAULT_MAX_SIDE,
) -> tuple[View, int | None]:
    """The view to draw and the OpenSlide level to read it at (None: read by ``mpp``).

    ``level``: an OpenSlide level of the slide (0 full resolution, downsample ``2**level``);
    ``mpp``: µm per output pixel; neither: the finest level at which the region fits in
    ``max_side`` pixels. ``region`` is level-0 ``(x, y, width, height)``, inside the slide.
    """
    pyramid = slide.pyramid
    if level is not None and mpp is not None:
        raise ValidationError("give level or mpp, not both")
    if region is not None:
        try:
            x, y, w, h = (float(v) for v in region)
        except (TypeError, ValueError):
            raise ValidationError(f"region is (x, y, width, height) in level-0 pixels, got {region!r}") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > pyramid.width + 1e-6 or y + h > pyramid.height + 1e-6:
            raise ValidationError(
                f"region {x:g},{y:g},{w:g},{h:g} is not inside the {pyramid.width}x{pyramid.height} slide")
        # Whole pixels: the picture's corner is a pixel of the slide, not between two.
        x0, y0 = math.floor(x), math.floor(y)
        region = (x0, y0, math.ceil(x + w) - x0, math.ceil(y + h) - y0)
    if level is not None:
        if not 0 <= level < slide.level_count:
            raise ValidationError(f"level {level} is outside 0..{slide.level_count - 1}")
        return View.of(pyramid, downsample=2.0 ** level, region=region), level
    if mpp is not None:
        if not mpp > 0 or not math.isfinite(mpp):
            raise ValidationError(f"mpp must be a positive number, got {mpp}")
        if pyramid.microns_per_pixel is None:
            raise ValidationError("the slide has no microns-per-pixel calibration: pass a level instead")
        view = View.of(pyramid, downsample=mpp / pyramid.microns_per_pixel, region=region)
        return view, None
    view = View.of(pyramid, region=region, max_side=max_side)
    return view, round(math.log2(1 / view.scale))


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    # DejaVu has the µ, ² and accents labels carry; Pillow's own font is the fallback.
    for name in ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_shapes(image: Any, shapes: Iterable[Shape], view: View, *, highlight: int | None = None) -> Any:
    """Draw ``shapes`` over ``image`` (whose pixel (0, 0) is the view's corner) and return a new
    RGB image. Fills are blended as their alpha says; strokes keep their width in pixels.
    ``highlight``: the index of a gallery patch to draw thick."""
    from PIL import ImageDraw

    out = image.convert("RGB")  # a copy: the caller's picture is left as it was
    # "RGBA" drawing on an RGB picture blends each colour by its alpha, in place: no overlay.
    draw = ImageDraw.Draw(out, "RGBA")
    margin = 64 / view.scale
    font = _font(16)
    vx, vy, scale = view.x, view.y, view.scale
    for shape in shapes:
        if not view.meets(shape, margin):
            continue
        style = shape.style
        width = style.width * (3 if shape.kind == "patch" and shape.index == highlight else 1)
        # Round joints only where a stroke is thick enough to show a notch.
        joint = "curve" if width > 2 else None
        if shape.kind == "arc":
            (x, y), r = shape.points[0], shape.radius * scale
            cx, cy = (x - vx) * scale, (y - vy) * scale
            if not (math.isfinite(r) and math.isfinite(cx) and math.isfinite(cy)):
                continue
            if r > _HUGE_RADIUS * max(out.size):
                _huge_arc(draw, out.size, (cx, cy), r, shape, width)
                continue
            box = (cx - r, cy - r, cx + r, cy + r)
            sweep = shape.end - shape.start
            if abs(sweep) >= 2 * math.pi - 1e-9:
                draw.ellipse(box, fill=style.fill, outline=style.stroke, width=width)
            else:
                start, end = (shape.start, shape.end) if sweep >= 0 else (shape.end, shape.start)
                draw.arc(box, math.degrees(start), math.degrees(end), fill=style.stroke, width=width)
            continue
        points = [((x - vx) * scale, (y - vy) * scale) for x, y in shape.points]
        if shape.kind == "label":
            draw.text(points[0], _visible_text(shape.text, points[0], out.size), fill=style.stroke, font=font)
        elif shape.kind == "polyline":
            draw.line(points, fill=style.stroke, width=width, joint=joint)
        else:  # polygon, patch
            if style.fill is not None and len(points) >= 3:
                draw.polygon(points, fill=style.fill)
            points.append(points[0])
            draw.line(points, fill=style.stroke, width=width, joint=joint)
    return out


#: An arc whose radius passes this many times the picture's longest side is drawn as chords:
#: Pillow's ellipse takes a minute at 10^6 pixels (a result's radius is anyone's number).
_HUGE_RADIUS = 4
#: The most characters of one label line drawn (Pillow renders a whole string before placing it).
_MAX_LABEL_CHARS = 10_000


def _visible_text(text: str, corner: tuple[float, float], size: tuple[int, int]) -> str:
    """The part of a label that can show: no glyph is narrower than 2 pixels nor a line lower
    than 8, so characters and lines past the picture's right and bottom edges are dropped."""
    x, y = corner
    chars = min(_MAX_LABEL_CHARS, max(0, math.ceil((size[0] - x) / 2)) + 1) if math.isfinite(x) else 0
    lines = max(0, math.ceil((size[1] - y) / 8)) + 1 if math.isfinite(y) else 0
    return "\n".join(line[:chars] for line in text.split("\n", lines)[:lines])


def _huge_arc(draw: Any, size: tuple[int, int], centre: tuple[float, float], r: float, shape: Shape, width: int) -> None:
    """An arc far larger than the picture, as the chords of the part the picture sees (each
    strays under half a pixel from the circle), and its fill as the sector that covers it."""
    (cx, cy), (w, h), pad = centre, size, width + 2
    corners = [(-pad, -pad), (w + pad, -pad), (w + pad, h + pad), (-pad, h + pad)]
    far = max(math.hypot(px - cx, py - cy) for px, py in corners)
    full = abs(shape.end - shape.start) >= 2 * math.pi - 1e-9
    if -pad <= cx <= w + pad and -pad <= cy <= h + pad or r > far + pad:
        # The picture lies inside the circle, away from its rim: only a fill shows.
        if full and shape.style.fill is not None and r > far:
            draw.rectangle((0, 0, w, h), fill=shape.style.fill)
        return
    # Seen from the centre (outside the picture), the picture spans under half a turn.
    base = math.atan2(corners[0][1] - cy, corners[0][0] - cx)
    turns = [(math.atan2(py - cy, px - cx) - base + math.pi) % (2 * math.pi) - math.pi for px, py in corners]
    lo, hi = base + min(turns), base + max(turns)
    count = min(100_000, max(2, math.ceil((hi - lo) / (2 / math.sqrt(r))) + 1))
    angles = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    first, last = sorted((shape.start, shape.end))  # as draw.arc below: clockwise from the smaller
    runs: list[list[tuple[float, float]]] = [[]]
    for a in angles:
        if full or (a - first) % (2 * math.pi) <= last - first:
            runs[-1].append((cx + r * math.cos(a), cy + r * math.sin(a)))
        elif runs[-1]:
            runs.append([])
    if full and shape.style.fill is not None:
        draw.polygon([(cx, cy), *runs[0]], fill=shape.style.fill)
    for run in runs:
        if len(run) >= 2:
            draw.line(run, fill=shape.style.stroke, width=width)


def _on_white(region: Any) -> Any:
    """An RGBA region on white (outside the slide is transparent) as RGB."""
    page = pillow().new("RGB", region.size, (255, 255, 255))
    page.paste(region, (0, 0), region)
    return page


def _shapes(results: list[s.Result], pyramid: Pyramid) -> list[Shape]:
    return [shape for result in results for shape in result_shapes(result, pyramid)]


def _read_args(view: View) -> tuple[tuple[int, int], tuple[int, int]]:
    return (math.floor(view.x), math.floor(view.y)), view.size


def render_results(
    slide: Any, results: s.Result | Iterable[s.Result], *, level: int | None = None, region: Region | None = None,
    mpp: float | None = None,
) -> Any:
    """The slide's pixels in ``region`` with ``results`` drawn on top, as an RGB ``PIL.Image``.

    ``slide``: what ``client.open_slide(slide_id)`` returns; ``results``: one result or several
    (``client.list_results(app, slide)``, a ``Result`` being built). ``level``: OpenSlide level
    (0 = full resolution); ``mpp``: µm per output pixel; neither: the whole region fits in 2048
    pixels. ``region``: level-0 ``(x, y, width, height)``, default the whole slide.
    """
    return render_view(slide, results, level=level, region=region, mpp=mpp).image


class _Read:
    """What both render_view and arender_view read and draw: everything but the read itself
    (the one call that is awaited on trio)."""

    def __init__(self, slide: Any, results: s.Result | Iterable[s.Result], level: int | None,
                 region: Region | None, mpp: float | None) -> None:
        self.slide = slide
        self.items = _as_list(results)
        self.view, self.level = plan_view(slide, level=level, region=region, mpp=mpp)
        self.location, self.size = _read_args(self.view)
        if self.level is None:
            assert mpp is not None  # plan_view reads by µm/px only when given one
        self.mpp = mpp if mpp is not None else 0.0

    def drawn(self, pixels: Any) -> RenderedView:
        """The results drawn over ``pixels``, the region this read planned."""
        shapes = _shapes(self.items, self.slide.pyramid)
        return RenderedView(draw_shapes(_on_white(pixels), shapes, self.view), self.view, self.slide.slide_id)


def render_view(
    slide: Any, results: s.Result | Iterable[s.Result], *, level: int | None = None, region: Region | None = None,
    mpp: float | None = None,
) -> RenderedView:
    """:func:`render_results` with where the picture lies (a :class:`RenderedView`)."""
    read = _Read(slide, results, level, region, mpp)
    if read.level is None:
        pixels = slide.read_region_mpp(read.location, read.mpp, read.size)
    else:
        pixels = slide.read_region(read.location, read.level, read.size)
    return read.drawn(pixels)


async def arender_results(
    slide: Any, results: s.Result | Iterable[s.Result], *, level: int | None = None, region: Region | None = None,
    mpp: float | None = None,
) -> Any:
    """:func:`render_results` on trio, for ``await client.open_slide(...)``'s slide."""
    return (await arender_view(slide, results, level=level, region=region, mpp=mpp)).image


async def arender_view(
    slide: Any, results: s.Result | Iterable[s.Result], *, level: int | None = None, region: Region | None = None,
    mpp: float | None = None,
) -> RenderedView:
    """:func:`render_view` on trio."""
    read = _Read(slide, results, level, region, mpp)
    if read.level is None:
        pixels = await slide.read_region_mpp(read.location, read.mpp, read.size)
    else:
        pixels = await slide.read_region(read.location, read.level, read.size)
    return read.drawn(pixels)
