"""Real slides for the mock: metadata, DZI tiles and the label read from whole-slide files by OpenSlide.

``MockSectraServer.add_slide_files`` and ``sectra mock serve --slides-dir`` hand files here. Whatever
OpenSlide reads (SVS, NDPI, MRXS, generic tiled TIFF, DICOM WSI since OpenSlide 4) becomes a slide
whose ``imageSize``, ``micronsPerPixel`` and ``fileFormat`` come from the file, whose tiles are the
DZI pyramid of spec §6 cut from its pixels by OpenSlide's own :class:`DeepZoomGenerator` (the
field's reference implementation: level 0 is 1x1, overlap 0, edge tiles smaller), and whose label is
the file's ``label`` associated image (none: 204, spec §4.8).

Concurrency: the mock runs on trio, so decoding and encoding run in worker threads
(``trio.to_thread.run_sync``) bounded by one :class:`trio.CapacityLimiter` per server. Concurrent
``read_region`` calls on one OpenSlide handle are safe and run in parallel (OpenSlide 3.3.1 release
notes; the ``slides`` extra requires 4.x), so tiles of one slide render in parallel; only ``close``
waits for the reads in progress. Encoded tiles go into a
bounded LRU cache (:class:`TileCache`, a byte budget), checked on the event loop first, so a cached
tile costs no thread hop at all.

Read-ahead (measured with ``bench/tiles_real.py``): a cold tile costs OpenSlide's decode plus a
request's overhead, so a client reading tiles one at a time would wait for both in turn. After a
cold tile the mock renders the next :data:`READ_AHEAD` tiles of the same level in raster order
(the order analysis apps walk a slide and viewers fill a row) in the app's nursery while the answer
goes out; a request for a tile in flight waits for it instead of rendering it twice, and a request
that lands on a read-ahead tile moves the window on. Read-ahead only uses idle worker threads and
leaves one free for requests.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from sectra_core import schemas as s
from sectra_core.errors import SectraError
from sectra_core.cache import TileCache  # one LRU for the mock's encoded and the client's decoded tiles

from .stored_formats import stored_tile_format

__all__ = [
    "TILE_FORMATS", "DEFAULT_TILE_CACHE_BYTES", "TileCache", "SlideImage", "open_slide_files",
    "tile_cache_bytes_from_env", "solid_tile", "synthetic_marker", "AVAILABLE_TILE_FORMATS", "READ_AHEAD",
    "JPEG_QUALITY", "encode_image", "DEFAULT_MPP", "SlideFileError", "SlideTooLargeError", "MAX_TILE_READ_BYTES",
]

log = logging.getLogger("sectra_mock")

#: Tile extension → (Pillow format, MIME type). Anything else is a 404, as for a tile that does
#: not exist (spec §4.7: the extension should be one of ``availableTileFormats``).
TILE_FORMATS: dict[str, tuple[str, str]] = {
    "jpg": ("JPEG", "image/jpeg"),
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
}

#: What the mock advertises in ``availableTileFormats``.
AVAILABLE_TILE_FORMATS = [
    s.TileFormat(mime_type="image/jpeg", extension="jpg"),
    s.TileFormat(mime_type="image/png", extension="png"),
]

#: Default byte budget of the tile cache (64 MiB: about 4,000 JPEG tiles of 240x240).
DEFAULT_TILE_CACHE_BYTES = 64 * 1024 * 1024
#: JPEG quality of served tiles: 75, what OpenSlide's reference DeepZoom server (its
#: ``deepzoom_server.py`` example) serves; within JPEG noise of the source and 1.5x faster to
#: encode than 85 (bench/tiles_real.py's floor uses the same).
JPEG_QUALITY = 75
#: Tiles rendered ahead of a cold read (see the module docstring); at most the worker threads
#: less one are busy reading ahead, so a request never waits behind a whole window of them.
READ_AHEAD = 3

#: Microns per pixel reported for a file without a resolution of its own (a 40x scan's 0.25): every
#: Sectra client requires ``micronsPerPixel``. ``add_slide_files(..., mpp=)``, ``MockSectraServer
#: (default_mpp=)`` and ``sectra mock serve --default-mpp`` choose another; the server warns naming the file.
DEFAULT_MPP = 0.25

#: The most RGBA bytes the mock reads from a file to cut one DZI tile (64 MiB: a 4096x4096
#: region). DeepZoom cuts each tile from the file's level nearest below it, so a file without
#: downsampled levels (a single-level TIFF, or one declaring dimensions its data do not have) would
#: read the whole level for each low-resolution tile: gigabytes a tile. Such a file is refused at
#: ``add_slide_files`` / ``--slides-dir`` (:class:`SlideTooLargeError`, a warning naming the file)
#: and served as files with synthetic tiles; build a pyramid (``vips tiffsave --tile --pyramid``).
MAX_TILE_READ_BYTES = 64 * 1024 * 1024

#: OpenSlide vendor → the ``fileFormat`` MIME type reported for it.
_FILE_FORMATS = {
    "dicom": "application/dicom",
    "aperio": "image/tiff",
    "generic-tiff": "image/tiff",
    "philips": "image/tiff",
    "ventana": "image/tiff",
    "leica": "image/tiff",
    "hamamatsu": "image/tiff",
    "trestle": "image/tiff",
}


def tile_cache_bytes_from_env() -> int:
    """The tile cache budget: ``$SECTRA_MOCK_TILE_CACHE_MB`` (MiB; 0 disables) or the default."""
    raw = os.environ.get("SECTRA_MOCK_TILE_CACHE_MB")
    if raw is None or not raw.strip():
        return DEFAULT_TILE_CACHE_BYTES
    from sectra_core.errors import ConfigurationError

    try:
        mb = float(raw)
    except ValueError:
        raise ConfigurationError(f"SECTRA_MOCK_TILE_CACHE_MB={raw!r} is not a number of MiB") from None
    if mb < 0:
        raise ConfigurationError("SECTRA_MOCK_TILE_CACHE_MB must be >= 0")
    return int(mb * 1024 * 1024)


def encode_image(image: Any, fmt: str) -> bytes:
    """Encode a Pillow image as ``fmt`` (a :data:`TILE_FORMATS` key)."""
    pil_format = TILE_FORMATS[fmt][0]
    buf = io.BytesIO()
    if pil_format == "JPEG":
        # DeepZoom tiles are RGB already; convert() would copy them for nothing.
        (image if image.mode == "RGB" else image.convert("RGB")).save(buf, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buf, "PNG", compress_level=1)  # speed over size: tiles are cached anyway
    return buf.getvalue()


def solid_tile(width: int, height: int, fmt: str, rgb: tuple[int, int, int]) -> bytes:
    """A tile of one colour, for slides whose files are not images (clearly synthetic)."""
    from PIL import Image

    return encode_image(Image.new("RGB", (max(1, width), max(1, height)), rgb), fmt)


class SlideFileError(SectraError):
    """A slide file OpenSlide opened cannot give what was asked (a tile, its label): damaged data.

    The message names the file (never its folder) and what failed; the server answers a JSON
    error and warns once per file (see ``sectra_mock.handlers.tile``)."""


class SlideTooLargeError(SlideFileError):
    """A slide file whose tiles the mock cannot cut within :data:`MAX_TILE_READ_BYTES` a tile
    (no downsampled levels, or dimensions past what a client accepts); the message names the file,
    the level and what to do."""


class SlideImage:
    """One whole-slide image opened with OpenSlide: its metadata, DZI tiles and label.

    ``tile_size`` is the DZI tile size served (``tileSize`` in the slide info); the file's own
    tile size does not matter. Not created directly: use :func:`open_slide_files`.
    """

    def __init__(self, path: Path, slide: Any, tile_size: int, *, max_read_bytes: int = MAX_TILE_READ_BYTES) -> None:
        from openslide.deepzoom import DeepZoomGenerator

        self.path = path
        self.tile_size = tile_size
        self._slide = slide
        # limit_bounds=False: Sectra's imageSize is the full level-0 size, and the pyramid
        # maths of spec §6 start from it; overlap 0 (spec §4.7).
        self._dz = DeepZoomGenerator(slide, tile_size=tile_size, overlap=0, limit_bounds=False)
        self._check_reads(max_read_bytes)
        self._background = "#" + slide.properties.get("openslide.background-color", "ffffff")
        self._level_tiles: list[tuple[int, int]] = [(int(c), int(r)) for c, r in self._dz.level_tiles]
        # Reads in progress (any number at once); close() waits until there are none.
        self._readers = 0
        self._idle = threading.Condition()
        self._closed = False
        #: Tiles being rendered (on the event loop only): key -> set once it is cached or failed.
        self._pending: dict[tuple[Any, ...], trio.Event] = {}
        #: Read-ahead tiles not asked for yet: asking for one moves the window on.
        self._ahead: set[tuple[Any, ...]] = set()
        self.vendor: str = slide.properties.get("openslide.vendor", "")
        # Iterate the names: ``in`` on OpenSlide's mapping would read and decode the image.
        self.has_label = "label" in list(slide.associated_images)
        self._failures_told = False
        #: ``storedTileFormat`` and where it was read (``""``: not told, the fallback).
        self.stored_format: tuple[s.TileFormat, str] = stored_tile_format(path, self.vendor, slide.properties)

    def __repr__(self) -> str:
        return f"<SlideImage {self.path.name} {self.vendor} {self._slide.dimensions}>"

    def _check_reads(self, budget: int) -> None:
        """Refuse (:class:`SlideTooLargeError`) a file whose largest tile read passes ``budget``
        bytes, or whose size no client accepts; from the file's declared levels, reading no pixel."""
        from sectra_core.regions import MAX_IMAGE_SIDE

        width, height = self.dimensions
        if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
            raise SlideTooLargeError(f"{self.path.name} declares {width}x{height} pixels, outside the 1..{MAX_IMAGE_SIDE} "
                                     "a side a client accepts (sectra_core.regions.MAX_IMAGE_SIDE)")
        for level in range(self._dz.level_count):
            # Tile (0, 0) is the level's largest (edge tiles are smaller).
            _location, slide_level, (w, h) = self._dz.get_tile_coordinates(level, (0, 0))
            if 4 * w * h > budget:
                raise SlideTooLargeError(
                    f"{self.path.name}: a tile of DZI level {level} would read {w}x{h} pixels ({4 * w * h / 2**20:.0f} MiB) "
                    f"from its level {slide_level} of {self._slide.level_count}, over the mock's {budget / 2**20:.0f} MiB a "
                    "tile (sectra_mock.slides.MAX_TILE_READ_BYTES): the file has no downsampled levels for it (or "
                    "declares a size its data lack); give it a pyramid, e.g. vips tiffsave IN OUT --tile --pyramid"
                )

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        w, h = self._slide.dimensions
        return int(w), int(h)

    @property
    def level_count(self) -> int:
        """Number of DZI levels (``max_level + 1``)."""
        return int(self._dz.level_count)

    def image_fields(self, default_mpp: float | None = None) -> dict[str, Any]:
        """The ``ImageInfo`` fields the file determines (spec §5.4), by Struct field name.

        Every field Sectra's clients require is present: ``micronsPerPixel`` is ``default_mpp``
        (:data:`DEFAULT_MPP` when None) where the file has no resolution, ``storedTileFormat``
        :data:`~sectra_mock.stored_formats.FALLBACK` where its compression cannot be told; both
        are listed in :meth:`notes`.
        """
        width, height = self.dimensions
        fields: dict[str, Any] = {
            "is_streamable": True,
            "image_size": s.Size(width=width, height=height),
            "tile_size": s.Size(width=self.tile_size, height=self.tile_size),
            "microns_per_pixel": self.file_mpp if self.file_mpp is not None else (default_mpp or DEFAULT_MPP),
            # OpenSlide reads one focal plane of RGB pixels (its API has no Z or channel
            # dimension, openslide/openslide#31; its DICOM reader refuses a Z-stack outright), so a
            # slide from a file has one focal plane, and one optical path: the one its DICOM
            # metadata declares (id and description, spec §5.4), else brightfield.
            "focal_planes": [s.FocalPlane(id="0", offset_um=0.0)],
            "optical_paths": [self._optical_path()],
            "stored_tile_format": self.stored_format[0],
            "available_tile_formats": list(AVAILABLE_TILE_FORMATS),
            "file_format": s.FileFormat(mime_type=_FILE_FORMATS.get(self.vendor, "application/octet-stream")),
        }
        return fields

    @property
    def file_mpp(self) -> float | None:
        """Microns per pixel at level 0 as the file states it (OpenSlide's ``openslide.mpp-x``), or None."""
        raw = self._slide.properties.get("openslide.mpp-x")
        try:
            mpp = float(raw) if raw else None
        except ValueError:
            return None
        return mpp if mpp is not None and math.isfinite(mpp) and mpp > 0 else None

    def _optical_path(self) -> s.OpticalPath:
        props = self._slide.properties
        path = "dicom.OpticalPathSequence[0]."
        ident = props.get(path + "OpticalPathIdentifier")
        if not ident:
            return s.OpticalPath(id="0", description="Brightfield")
        description = (props.get(path + "OpticalPathDescription")
                       or props.get(path + "IlluminationTypeCodeSequence[0].CodeMeaning") or "")
        return s.OpticalPath(id=ident, description=description)

    def notes(self, default_mpp: float | None = None) -> list[str]:
        """What the file holds that the mock cannot serve, or does not say (for the server's warnings)."""
        found: list[str] = []
        declared = self._slide.properties.get("dicom.NumberOfOpticalPaths", "1")
        if declared.isdigit() and int(declared) > 1:
            kept = self._optical_path()
            found.append(f"{self.path.name} declares {declared} optical paths; OpenSlide reads one set of RGB pixels, "
                         f"so the slide reports and serves only optical path {kept.id!r} ({kept.description})")
        if self.file_mpp is None:
            found.append(f"{self.path.name} has no microns-per-pixel (resolution) of its own: micronsPerPixel is "
                         f"reported as {default_mpp or DEFAULT_MPP} (add_slide_files(..., mpp=), sectra mock serve --default-mpp)")
        if not self.stored_format[1]:
            found.append(f"{self.path.name}: the compression of its tiles cannot be told; storedTileFormat is "
                         f"reported as {self.stored_format[0].mime_type}")
        return found

    def first_failure(self, _message: str) -> bool:
        """True the first time a tile of this file failed (warn once per file, not per tile)."""
        told, self._failures_told = self._failures_told, True
        return not told

    def level_grid(self, level: int) -> tuple[int, int] | None:
        """``(columns, rows)`` at DZI ``level``, or None if there is no such level."""
        if not 0 <= level < len(self._level_tiles):
            return None
        return self._level_tiles[level]

    def _begin_read(self) -> None:
        with self._idle:
            if self._closed:
                raise RuntimeError(f"{self.path.name} is closed")
            self._readers += 1

    def _end_read(self) -> None:
        with self._idle:
            self._readers -= 1
            self._idle.notify_all()

    def render_tile(self, level: int, col: int, row: int, fmt: str) -> bytes:
        """The encoded tile (blocking: call it in a worker thread). The caller checked the address.

        A tile OpenSlide cannot cut from the file (damaged tile data, a file changed on disk)
        raises :class:`SlideFileError` naming the file and the tile.
        """
        self._begin_read()
        try:
            image = self._deepzoom_tile(level, col, row)
        except Exception as exc:  # OpenSlideError, OSError, Pillow's errors: whatever the file did
            raise SlideFileError(
                f"{self.path.name}: tile ({col}, {row}) of DZI level {level} cannot be cut: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self._end_read()
        return encode_image(image, fmt)

    def _deepzoom_tile(self, level: int, col: int, row: int) -> Any:
        """``DeepZoomGenerator.get_tile``'s pixels at exactly the advertised tile size.

        The region and the tile size come from DeepZoom's public ``get_tile_coordinates`` and
        ``get_tile_dimensions``. ``get_tile`` shrinks the region with ``Image.thumbnail``, which
        keeps the aspect ratio and so makes some right/bottom edge tiles a pixel smaller than the
        pyramid the slide info states (spec §6); this resizes to the stated size instead, with
        the same filter and reducing gap, so a tile ``thumbnail`` would not shrink is the same
        pixels as ``get_tile``'s and an edge tile is exactly as large as spec §6 says.

        DeepZoom composites every region onto the background through its alpha channel; where the
        region is opaque (all of a slide's tissue area) that is a plain RGBA->RGB conversion, a
        quarter of the cost (bench/tiles_real.py). tests/mock/test_slides.py holds PNG tiles
        pixel-identical to ``get_tile`` wherever its size is right.
        """
        from PIL import Image

        location, slide_level, region_size = self._dz.get_tile_coordinates(level, (col, row))
        size = self._dz.get_tile_dimensions(level, (col, row))
        if 0 in region_size:
            # A one-pixel edge tile over a stored level that rounds down (a 241-pixel DZI level
            # over a 240-pixel file level): DeepZoom's region is empty, and get_tile would paint
            # the tile black. The stored level's last line is what belongs there.
            step = self._slide.level_downsamples[slide_level]
            (x, y), (w, h) = location, region_size
            location = (int(max(0, x - step)) if w == 0 else x, int(max(0, y - step)) if h == 0 else y)
            region_size = (max(1, w), max(1, h))
        tile = self._slide.read_region(location, slide_level, region_size)
        if tile.getchannel("A").getextrema() == (255, 255):
            tile = tile.convert("RGB")
        else:  # transparent parts (outside the scanned area): onto the background, as DeepZoom does
            tile = Image.composite(tile, Image.new("RGB", tile.size, self._background), tile)
        if tile.size != size:
            # Image.thumbnail(size) is resize(<size keeping the aspect ratio>, reducing_gap=2.0).
            tile = tile.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        return tile

    async def tile(
        self, cache: TileCache, slide_id: str, level: int, col: int, row: int, fmt: str, *,
        limiter: trio.CapacityLimiter, nursery: trio.Nursery | None = None,
    ) -> bytes:
        """The encoded tile at a checked address: from ``cache``, from a render in flight, or
        rendered now in a worker thread (and cached). With a ``nursery`` (the app's), a cold tile
        starts a read-ahead of the next tiles there (module docstring)."""
        key = (slide_id, id(self), level, col, row, TILE_FORMATS[fmt][0])
        data = cache.get(key)
        if data is not None:
            if key in self._ahead:  # the reader is following the read-ahead: keep ahead of it
                self._ahead.discard(key)
                self._read_ahead(cache, key, fmt, limiter, nursery)
            return data
        pending = self._pending.get(key)
        if pending is not None:
            await pending.wait()
            data = cache.get(key, count=False)  # this request's miss is counted already
            if data is not None:
                self._ahead.discard(key)
                self._read_ahead(cache, key, fmt, limiter, nursery)
                return data
            # The read-ahead failed or its tile was evicted at once: render it here.
        self._pending[key] = trio.Event()
        data = await self._render(cache, key, fmt, limiter)
        self._read_ahead(cache, key, fmt, limiter, nursery)
        return data

    async def _render(self, cache: TileCache, key: tuple[Any, ...], fmt: str, limiter: trio.CapacityLimiter) -> bytes:
        # The caller claimed ``key`` in _pending (synchronously, so nobody renders it twice).
        try:
            _sid, _iid, level, col, row, _pil = key
            data = await trio.to_thread.run_sync(self.render_tile, level, col, row, fmt, limiter=limiter)
            cache.put(key, data)
            return data
        finally:
            self._pending.pop(key).set()

    def _read_ahead(
        self, cache: TileCache, key: tuple[Any, ...], fmt: str, limiter: trio.CapacityLimiter,
        nursery: trio.Nursery | None,
    ) -> None:
        # Only idle threads: read-ahead must never delay a tile somebody asked for. The cache
        # must be on too, or a read-ahead tile would be rendered for nothing.
        if nursery is None or cache.max_bytes == 0:
            return
        slide_id, iid, level, col, row, pil = key
        cols, rows = self._level_tiles[level]
        for _ in range(READ_AHEAD):
            col += 1
            if col == cols:
                col, row = 0, row + 1
                if row == rows:
                    return
            nxt = (slide_id, iid, level, col, row, pil)
            if nxt in cache or nxt in self._pending:
                continue
            # One thread stays free for requests; read-ahead never queues behind itself.
            if limiter.available_tokens < 2 or len(self._pending) >= limiter.total_tokens - 1:
                return
            if len(self._ahead) > 64 * READ_AHEAD:  # read ahead but never asked for: forget
                self._ahead.clear()
            self._pending[nxt] = trio.Event()  # claimed now, so the next request waits for it
            try:
                nursery.start_soon(self._ahead_task, cache, nxt, fmt, limiter)
            except RuntimeError:  # the nursery is closed (the server is stopping): no read-ahead
                self._pending.pop(nxt).set()
                return
            self._ahead.add(nxt)

    async def _ahead_task(self, cache: TileCache, key: tuple[Any, ...], fmt: str, limiter: trio.CapacityLimiter) -> None:
        try:
            await self._render(cache, key, fmt, limiter)
        except Exception as exc:  # a read-ahead must not take the server down; a request retries
            log.debug("read-ahead of tile %s failed: %s", key[2:5], exc)
            self._ahead.discard(key)

    def label_png(self) -> bytes | None:
        """The label associated image as PNG (lossless: it may hold a barcode), or None."""
        if not self.has_label:
            return None
        self._begin_read()
        try:
            image = self._slide.associated_images["label"]
        except Exception as exc:  # OpenSlideError and the like: a damaged label directory
            raise SlideFileError(f"{self.path.name}: its label image cannot be read: {type(exc).__name__}: {exc}") from exc
        finally:
            self._end_read()
        return encode_image(image, "png")

    def close(self) -> None:
        """Close the OpenSlide handle once the reads in progress are done."""
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: self._readers == 0)
            self._slide.close()


def open_slide_files(files: Sequence[Path], tile_size: int = 240, *, reasons: list[str] | None = None) -> SlideImage | None:
    """Open the whole-slide image among ``files`` with OpenSlide; None if none of them is one.

    For a multi-file format (DICOM WSI, MIRAX) any one file opens the whole slide; files are tried
    in order. A missing ``openslide`` package (the ``slides`` extra) is logged once and treated as
    "not a slide", so the mock still serves the files. Why each file was refused (its name and
    OpenSlide's error) is appended to ``reasons``. A slide the mock cannot cut tiles from within
    :data:`MAX_TILE_READ_BYTES` a tile raises :class:`SlideTooLargeError`.
    """
    from sectra_core.errors import MissingExtraError, NotSlideFileError
    from sectra_transports.downloaded import pick_slide

    try:
        path, slide = pick_slide(files)
    except MissingExtraError:  # pragma: no cover - the mock and test extras install it
        log.warning("openslide-python is not installed (pip install 'sectra-sdk[slides]'): slide files get synthetic metadata")
        return None
    except NotSlideFileError as exc:
        log.info("no slide among the files: %s", exc)
        if reasons is not None:
            reasons.append(str(exc))
        return None
    try:
        return SlideImage(path, slide, tile_size)
    except SlideTooLargeError:  # the caller warns with its own words: the file is a slide, refused
        slide.close()
        raise
    except Exception as exc:  # OpenSlide opened it, but its levels or properties are unusable
        slide.close()
        if reasons is not None:
            reasons.append(f"{path.name}: {type(exc).__name__}: {exc}")
        return None


def synthetic_marker(info: s.ImageInfo, files: Sequence[Path]) -> s.ImageInfo:
    """Mark invented metadata as such, where a person reading the slide info will see it."""
    names = ", ".join(Path(f).name for f in files[:3]) + (" ..." if len(files) > 3 else "")
    return msgspec.structs.replace(
        info,
        station_name="SYNTHETIC",
        specimen=s.Specimen(anatomy="synthetic", description=f"not a slide OpenSlide can read: {names}"),
    )
