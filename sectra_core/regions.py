"""Regions of a remote slide, sans I/O: OpenSlide-style levels, which tiles a region needs, stitching.

Sectra serves a slide as the DZI tile pyramid of spec §6: DZI level ``max_level`` is full
resolution and each level below halves it, down to 1x1. OpenSlide numbers levels the other way
(level 0 is full resolution, downsamples grow). :class:`SlideLevels` presents the pyramid as
OpenSlide does: OpenSlide level ``k`` is DZI level ``max_level - k`` with downsample exactly
``2**k``, listed down to the first level that fits in one tile (smaller levels hold nothing a
caller needs, and a thumbnail is resized from that one anyway).

:func:`plan_region` turns OpenSlide's ``read_region(location, level, size)`` into the DZI tiles to
fetch; :func:`stitch` pastes the decoded tiles into an RGBA array, transparent outside the slide as
OpenSlide's is. Decoding and stitching need Pillow and numpy (the ``imaging`` extra); they are
imported when first used, and a missing one raises :class:`~sectra_core.errors.MissingExtraError`.
The transports drive this: ``sectra_transports`` fetches the tiles, nothing here does I/O.
"""

from __future__ import annotations

import io
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import schemas as s
from .errors import DecodeError, ValidationError, require
from .geometry import Pyramid

__all__ = [
    "TileKey", "DEFAULT_CACHE_BYTES", "SlideLevels", "region_size", "choose", "label_images", "RegionPlan", "plan_region", "plan_mpp", "grid_mpp",
    "batches", "TILE_SIZE_SLACK", "tile_size", "sliver_stand_in", "sliver_from", "decode_tile", "decode_tile_pixels", "canvas", "paste", "stitch",
    "to_image", "resize", "slide_properties", "numpy", "pillow",
]

#: A DZI tile address: (DZI level, column, row), as the clients' ``fetch_tiles`` takes it.
TileKey = tuple[int, int, int]


#: Default byte budget of a remote slide's decoded-tile cache: 64 MiB, about 390 RGB tiles of 240x240.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


def numpy() -> Any:
    """The numpy module, or :class:`~sectra_core.errors.MissingExtraError` naming the extra."""
    return require("numpy", "imaging", "reading slide pixels")


def pillow() -> Any:
    """``PIL.Image``, or :class:`~sectra_core.errors.MissingExtraError` naming the extra."""
    return require("PIL.Image", "imaging", "reading slide pixels")


class SlideLevels:
    """The DZI pyramid seen as OpenSlide's levels: level 0 full resolution, downsample ``2**k``."""

    def __init__(self, pyramid: Pyramid) -> None:
        self.pyramid = pyramid
        dims: list[tuple[int, int]] = []
        for dzi in range(pyramid.max_level, -1, -1):
            w, h = pyramid.level_size(dzi)
            dims.append((w, h))
            if w <= pyramid.tile_size and h <= pyramid.tile_size:
                break  # this level is one tile; smaller ones add nothing (see the module docstring)
        self.level_dimensions: tuple[tuple[int, int], ...] = tuple(dims)
        self.level_downsamples: tuple[float, ...] = tuple(float(2**k) for k in range(len(dims)))

    @property
    def level_count(self) -> int:
        """How many levels are exposed."""
        return len(self.level_dimensions)

    def check(self, level: int) -> int:
        """``level`` if it exists, else :class:`ValidationError` naming the valid range."""
        if not isinstance(level, int) or not 0 <= level < self.level_count:
            raise ValidationError(f"level {level!r} does not exist: this slide has levels 0..{self.level_count - 1}")
        return level

    def dzi_level(self, level: int) -> int:
        """The DZI level (spec §6) of OpenSlide-style ``level``."""
        return self.pyramid.max_level - self.check(level)

    def best_level_for_downsample(self, downsample: float) -> int:
        """OpenSlide's rule: the largest level whose downsample is not above ``downsample``."""
        best = 0
        for level, factor in enumerate(self.level_downsamples):
            if factor <= downsample:
                best = level
        return best

    def mpp(self, level: int) -> float | None:
        """Microns per pixel at ``level`` (None without a calibration)."""
        return self.pyramid.mpp(self.dzi_level(level))

    def level_for_mpp(self, mpp: float) -> int:
        """The coarsest level whose pixels are no coarser than ``mpp`` µm (read it, then downscale).

        A model trained at 0.5 µm/px on a 0.25 µm/px slide reads level 1 as is; at 0.6 µm/px it
        reads level 1 and shrinks by 0.5/0.6. Asking finer than the scan gives level 0.
        """
        if not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and mpp > 0):
            raise ValidationError(f"microns per pixel must be a positive number, got {mpp!r}")
        base = self.pyramid.microns_per_pixel
        if base is None:
            raise ValidationError("the slide has no microns-per-pixel calibration: read by level instead")
        best = 0
        for level in range(self.level_count):
            # A relative slack: 0.25 * 2 must count as 0.5 despite float rounding.
            if base * self.level_downsamples[level] <= mpp * (1 + 1e-9):
                best = level
        return best


@dataclass(frozen=True, slots=True)
class RegionPlan:
    """A region at one level: its origin and size in that level's pixels and the tiles it meets."""

    level: int
    dzi_level: int
    x: int
    y: int
    width: int
    height: int
    tiles: tuple[TileKey, ...]


def region_size(size: Iterable[int]) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValidationError(f"size is (width, height) in pixels, got {size!r}") from None
    if w < 1 or h < 1:
        raise ValidationError(f"size must be at least 1x1 pixels, got {w}x{h}")
    return w, h


def plan_region(levels: SlideLevels, location: Iterable[float], level: int, size: Iterable[int]) -> RegionPlan:
    """The tiles OpenSlide's ``read_region(location, level, size)`` needs.

    ``location`` is in level-0 pixels (OpenSlide's convention), the region's top-left corner;
    ``size`` in pixels of ``level``. Parts outside the slide need no tile (they are transparent).
    """
    try:
        x0, y0 = (float(v) for v in location)
    except (TypeError, ValueError):
        raise ValidationError(f"location is (x, y) in level-0 pixels, got {location!r}") from None
    if not (math.isfinite(x0) and math.isfinite(y0)):
        raise ValidationError(f"location must be finite, got ({x0}, {y0})")
    width, height = region_size(size)
    dzi = levels.dzi_level(level)
    factor = levels.level_downsamples[level]
    x, y = math.floor(x0 / factor), math.floor(y0 / factor)
    level_w, level_h = levels.pyramid.level_size(dzi)
    if x >= level_w or y >= level_h or x + width <= 0 or y + height <= 0:
        tiles: tuple[TileKey, ...] = ()
    else:
        tiles = tuple(levels.pyramid.tiles(dzi, (max(x, 0), max(y, 0), min(x + width, level_w), min(y + height, level_h))))
    return RegionPlan(level, dzi, x, y, width, height, tiles)


def plan_mpp(levels: SlideLevels, mpp: float, size: Iterable[int]) -> tuple[int, tuple[int, int]]:
    """For a region of ``size`` pixels at ``mpp`` µm/px: the level to read and how many of its pixels.

    The caller reads that many pixels at that level and resizes them to ``size``.
    """
    width, height = region_size(size)
    level = levels.level_for_mpp(mpp)
    level_mpp = levels.mpp(level)
    assert level_mpp is not None  # level_for_mpp refused an uncalibrated slide
    scale = mpp / level_mpp
    return level, (max(1, round(width * scale)), max(1, round(height * scale)))


def grid_mpp(
    levels: SlideLevels, mpp: float, size: Iterable[int], box: Iterable[int] | None = None,
) -> tuple[int, tuple[int, int], list[tuple[int, int]]]:
    """The regions that tile ``box`` (level-0 ``(x, y, width, height)``; the whole slide by default)
    at ``mpp`` µm/px in ``size`` pixels, row by row: ``(level, pixels to read there, level-0 corners)``.

    Corners step by ``size`` at ``mpp`` in level-0 pixels (rounded), so neighbouring regions
    neither overlap nor leave gaps; the last row and column may reach past the slide (transparent).
    """
    width, height = region_size(size)
    level, source = plan_mpp(levels, mpp, (width, height))
    full_w, full_h = levels.level_dimensions[0]
    if box is None:
        x0, y0, bw, bh = 0, 0, full_w, full_h
    else:
        try:
            x0, y0, bw, bh = (int(v) for v in box)
        except (TypeError, ValueError):
            raise ValidationError(f"box is (x, y, width, height) in level-0 pixels, got {box!r}") from None
        if bw < 1 or bh < 1:
            raise ValidationError(f"box must be at least 1x1 level-0 pixels, got {bw}x{bh}")
    base = levels.pyramid.microns_per_pixel
    assert base is not None  # plan_mpp refused an uncalibrated slide
    step_x, step_y = width * mpp / base, height * mpp / base  # level-0 pixels per region
    columns, rows = math.ceil(bw / step_x - 1e-9), math.ceil(bh / step_y - 1e-9)
    corners = [(x0 + round(i * step_x), y0 + round(j * step_y)) for j in range(rows) for i in range(columns)]
    return level, source, corners


def batches(plans: Sequence[RegionPlan], max_tiles: int) -> list[range]:
    """Consecutive plans grouped (as index ranges) so each group needs at most ``max_tiles`` distinct
    tiles (a region needing more gets a group of its own): the windows a whole-slide iteration
    fetches ahead of the caller."""
    groups: list[range] = []
    start, seen = 0, set[TileKey]()
    for index, plan in enumerate(plans):
        new = seen.union(plan.tiles)
        if index > start and len(new) > max_tiles:
            groups.append(range(start, index))
            start, new = index, set(plan.tiles)
        seen = new
    if plans:
        groups.append(range(start, len(plans)))
    return groups


#: How many pixels (on each axis) a tile may differ from the size spec §6 gives its place and still
#: be fitted to it. A server whose level sizes round down (Sectra's own dzidesc does, spec §6) or
#: that shrinks an edge tile while keeping its aspect ratio (OpenSlide's DeepZoom) sends edge tiles a
#: pixel short; more than this means another pyramid than the slide info states.
TILE_SIZE_SLACK = 2


def tile_size(pyramid: Pyramid, key: TileKey) -> tuple[int, int]:
    """``(width, height)`` of the tile at ``key`` as the slide info's geometry states it (spec §6)."""
    return pyramid.tile_box(*key)[2:]


def _open_tile(data: bytes, key: TileKey | None, size: tuple[int, int] | None = None) -> Any:
    """A tile's bytes decoded by Pillow: a loaded ``PIL.Image`` in mode RGB, ``size`` when given."""
    image = pillow()  # outside the try: a MissingExtraError is a ValueError too
    where = f"tile {key}" if key is not None else "a tile"
    try:
        tile = image.open(io.BytesIO(data))
        if size is not None and not _fits(tile.size, size):  # checked before decoding a single pixel
            raise DecodeError(
                f"{where} is {tile.size[0]}x{tile.size[1]} pixels where the slide's geometry (spec §6) "
                f"puts a {size[0]}x{size[1]} tile: the server serves another pyramid than its slide info states"
            )
        tile.load()
        # JPEG tiles decode to RGB already: converting would copy every tile once more.
        tile = tile if tile.mode == "RGB" else tile.convert("RGB")
    except (OSError, ValueError) as exc:  # PIL.UnidentifiedImageError is an OSError
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(f"{where} is not an image Pillow can decode ({len(data)} bytes): {exc}") from None
    if size is not None and tile.size != size:
        tile = _fit(tile, size)
    return tile


def _fit(tile: Any, size: tuple[int, int]) -> Any:
    """``tile`` placed at its top-left corner on exactly ``size``: cropped where it is long, its last
    column/row repeated where it is short (see :data:`TILE_SIZE_SLACK`).

    The tile keeps its scale: a server whose levels round down sends the same pixels a pixel
    short (its level ends a pixel earlier), so the missing line is the edge line's neighbour, not a
    reason to stretch the tile or leave a transparent line inside the slide.
    """
    image = pillow()
    width, height = tile.size
    tile = tile.crop((0, 0, min(width, size[0]), min(height, size[1])))
    if tile.size == size:
        return tile
    out = image.new("RGB", size)
    out.paste(tile, (0, 0))
    if tile.width < size[0]:  # repeat the last column, then (below) the last row, corner included
        out.paste(tile.crop((tile.width - 1, 0, tile.width, tile.height)).resize((size[0] - tile.width, tile.height)),
                  (tile.width, 0))
    if tile.height < size[1]:
        out.paste(out.crop((0, tile.height - 1, size[0], tile.height)).resize((size[0], size[1] - tile.height)),
                  (0, tile.height))
    return out


def sliver_stand_in(pyramid: Pyramid, key: TileKey) -> TileKey | None:
    """For a right/bottom edge tile one pixel wide or high: the neighbour whose last column/row
    stands in for it when the server has no such tile (a server whose level sizes round down ends
    its level a pixel earlier, spec §6, so that one-pixel tile is a 404 there). None otherwise."""
    level, col, row = key
    cols, rows = pyramid.grid(level)
    _x, _y, width, height = pyramid.tile_box(level, col, row)
    thin_x = col == cols - 1 and col > 0 and width == 1
    thin_y = row == rows - 1 and row > 0 and height == 1
    if not (thin_x or thin_y):
        return None
    return level, col - 1 if thin_x else col, row - 1 if thin_y else row


def sliver_from(
    data: bytes, size: tuple[int, int], key: TileKey | None = None, whole: tuple[int, int] | None = None,
) -> bytes:
    """A ``size`` tile made of the last columns/rows of another tile's bytes (its neighbour's,
    see :func:`sliver_stand_in`), PNG-encoded so it decodes like any tile. ``whole``: that tile's
    own size by the geometry (:func:`tile_size`), checked before it is decoded, as for any tile."""
    tile = _open_tile(data, key, whole)
    width, height = tile.size
    piece = tile.crop((max(0, width - size[0]), max(0, height - size[1]), width, height))
    out = io.BytesIO()
    _fit(piece, size).save(out, "PNG")
    return out.getvalue()


def _fits(got: tuple[int, int], size: tuple[int, int]) -> bool:
    return all(abs(g - w) <= TILE_SIZE_SLACK for g, w in zip(got, size))


def decode_tile(data: bytes, key: TileKey | None = None, size: tuple[int, int] | None = None) -> Any:
    """A tile's bytes (JPEG, PNG, anything Pillow reads) → an ``(h, w, 3)`` uint8 array.

    With ``size`` (``(width, height)``, from :func:`tile_size`) the tile is fitted to it: a tile up
    to :data:`TILE_SIZE_SLACK` pixels off is resampled to exactly that size, one further off is a
    :class:`~sectra_core.errors.DecodeError`. Thread-safe and mostly GIL-free (Pillow's decoders
    release it), so the transports run it in worker threads as each tile arrives.
    """
    return numpy().asarray(_open_tile(data, key, size))


def decode_tile_pixels(
    data: bytes, key: TileKey | None = None, *, rgb: bool = True, size: tuple[int, int] | None = None,
) -> tuple[Any, Any]:
    """One decode of a tile, in the two forms a remote slide uses: ``(pixels, rgb)``.

    ``pixels`` is ``(h, w, 4)`` uint8 for :func:`paste`, whose fourth byte is *not* alpha (paste
    makes every tile pixel opaque): Pillow keeps RGB images four bytes a pixel, so this is a plain
    copy of its memory and pasting it is a copy of whole 32-bit pixels, where the compact
    ``(h, w, 3)`` form costs a pack and then a strided copy with a separate alpha write, about
    three times the CPU a tile (the decode itself excepted). ``rgb`` is that compact form
    (:func:`decode_tile`'s), three bytes a pixel, for a cache that counts its bytes; None when
    ``rgb=False`` (nothing would keep it). ``size`` fits the tile as :func:`decode_tile` does.
    Thread-safe, as :func:`decode_tile`.
    """
    np = numpy()
    tile = _open_tile(data, key, size)
    width, height = tile.size
    pixels = np.frombuffer(tile.tobytes("raw", "RGBX"), dtype=np.uint8).reshape(height, width, 4)
    return pixels, np.asarray(tile) if rgb else None


def choose(what: str, wanted: str | None, available: list[Any]) -> str | None:
    """Check a focal plane / optical path id against the slide info's list (spec §5.4)."""
    ids = [item.id for item in available]
    if wanted is None or wanted in ids:
        return wanted
    raise ValidationError(f"{what} {wanted!r} does not exist on this slide; it has {ids!r}")


def label_images(label: s.LabelImage | None) -> dict[str, Any]:
    """OpenSlide's ``associated_images`` from ``/slides/{id}/label`` (spec §4.8): ``{"label": RGBA image}``
    or ``{}`` when the slide has no label."""
    if label is None:
        return {}
    try:
        with pillow().open(io.BytesIO(label.data)) as opened:
            return {"label": opened.convert("RGBA")}  # OpenSlide returns associated images as RGBA
    except (OSError, ValueError) as exc:
        raise DecodeError(f"the label image ({label.content_type}) is not an image Pillow can decode: {exc}") from None


def canvas(plan: RegionPlan) -> Any:
    """An empty region: ``(h, w, 4)`` uint8, all ``(0, 0, 0, 0)`` (transparent, as OpenSlide outside the slide)."""
    np = numpy()
    return np.zeros((plan.height, plan.width, 4), dtype=np.uint8)


#: A pixel's four bytes with alpha 255 and nothing else, as the uint32 a 4-byte-pixel view reads
#: (whatever the byte order): OR-ed into a pasted pixel it makes it opaque.
_OPAQUE = int.from_bytes(b"\0\0\0\xff", sys.byteorder)


def paste(plan: RegionPlan, pyramid: Pyramid, out: Any, key: TileKey, pixels: Any) -> None:
    """Paste one decoded tile into ``out`` (from :func:`canvas`), opaque.

    ``pixels``: ``(h, w, 3)`` RGB (:func:`decode_tile`) or ``(h, w, 4)`` whose fourth byte is
    ignored (:func:`decode_tile_pixels`); the latter is copied a whole 32-bit pixel at a time,
    with alpha set to 255 in the same pass. Tiles do not overlap (spec §6: overlap 0), so threads
    may paste different tiles of one region at once. Decode with ``size=`` (as the remote slides
    do) so that a tile a pixel short or long fills exactly its place; a tile of another size is
    pasted as far as it reaches.
    """
    tx, ty, _, _ = pyramid.tile_box(*key)
    th, tw = pixels.shape[:2]
    # The overlap of the tile and the region, in level pixels.
    left, top = max(tx, plan.x), max(ty, plan.y)
    right, bottom = min(tx + tw, plan.x + plan.width), min(ty + th, plan.y + plan.height)
    if right <= left or bottom <= top:
        return
    dst = out[top - plan.y:bottom - plan.y, left - plan.x:right - plan.x]
    src = pixels[top - ty:bottom - ty, left - tx:right - tx]
    if src.shape[2] == 4:
        np = numpy()
        np.bitwise_or(src.view(np.uint32)[..., 0], np.uint32(_OPAQUE), out=dst.view(np.uint32)[..., 0])
    else:
        dst[..., :3] = src[..., :3]
        dst[..., 3] = 255


def stitch(plan: RegionPlan, pyramid: Pyramid, tiles: Mapping[TileKey, Any]) -> Any:
    """Paste decoded tiles (by key, as :func:`paste` takes them) into the region: ``(h, w, 4)`` uint8 RGBA.

    Pixels no tile covers (outside the slide) are ``(0, 0, 0, 0)``, as OpenSlide's.
    """
    out = canvas(plan)
    for key in plan.tiles:
        paste(plan, pyramid, out, key, tiles[key])
    return out


def to_image(array: Any) -> Any:
    """An RGBA array → a ``PIL.Image`` in mode RGBA (what OpenSlide's ``read_region`` returns)."""
    return pillow().fromarray(array, "RGBA")


def resize(array: Any, size: tuple[int, int]) -> Any:
    """Resize an RGBA array to ``size`` (width, height) with Pillow's Lanczos filter."""
    image = pillow()
    if (array.shape[1], array.shape[0]) == size:
        return array
    return numpy().asarray(image.fromarray(array, "RGBA").resize(size, image.Resampling.LANCZOS))


def slide_properties(info: s.ImageInfo, levels: SlideLevels) -> dict[str, str]:
    """OpenSlide-style properties of a remote slide, plus ``sectra.*`` fields (never PHI fields).

    ``openslide.mpp-x``/``-y`` come from ``micronsPerPixel`` (Sectra has one value for both axes,
    spec §5.4); ``openslide.objective-power`` is absent because Sectra does not report it.
    """
    props: dict[str, str] = {"openslide.vendor": "sectra", "openslide.level-count": str(levels.level_count)}
    if info.microns_per_pixel is not None:
        props["openslide.mpp-x"] = props["openslide.mpp-y"] = repr(float(info.microns_per_pixel))
    for k, (w, h) in enumerate(levels.level_dimensions):
        props[f"openslide.level[{k}].width"] = str(w)
        props[f"openslide.level[{k}].height"] = str(h)
        props[f"openslide.level[{k}].downsample"] = repr(levels.level_downsamples[k])
        props[f"openslide.level[{k}].tile-width"] = props[f"openslide.level[{k}].tile-height"] = str(info.tile_size.width)
    props["sectra.slide-id"] = info.id
    props["sectra.tile-size"] = str(info.tile_size.width)
    props["sectra.focal-planes"] = ",".join(p.id for p in info.focal_planes)
    props["sectra.optical-paths"] = ",".join(p.id for p in info.optical_paths)
    if info.file_format is not None:
        props["sectra.file-format"] = info.file_format.mime_type
    if info.stored_tile_format is not None:
        props["sectra.stored-tile-format"] = info.stored_tile_format.mime_type
    if info.staining is not None:
        props["sectra.staining"] = info.staining.display_name
    if info.block is not None:
        props["sectra.block"] = info.block.display_name
    return props
