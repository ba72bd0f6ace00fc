"""Real slides for the mock: metadata, DZI tiles and the label read from whole-slide files by OpenSlide.

``MockSectraServer.add_slide_files`` and ``sectra mock serve --slides-dir`` hand files here. Whatever
OpenSlide reads (SVS, NDPI, MRXS, generic tiled TIFF, DICOM WSI since OpenSlide 4) becomes a slide
whose ``imageSize``, ``micronsPerPixel`` and ``fileFormat`` come from the file, whose tiles are the
DZI pyramid of spec §6 cut from its pixels by OpenSlide's own :class:`DeepZoomGenerator` (the
field's reference implementation: level 0 is 1x1, overlap 0, edge tiles smaller), and whose label is
the file's ``label`` associated image (none: 204, spec §4.8).

Concurrency: the mock runs on trio, so decoding and encoding run in worker threads
(``trio.to_thread.run_sync``) bounded by one :class:`trio.CapacityLimiter` per server. Reads of one
slide take that slide's lock (older OpenSlide releases were not safe for concurrent reads of one
handle, and ``close`` must not race a read); the JPEG/PNG encode runs outside the lock, so one slide's
tiles still encode in parallel. Encoded tiles go into a bounded LRU cache (:class:`TileCache`,
a byte budget), checked on the event loop first, so a cached tile costs no thread hop at all.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from sectra_core import schemas as s
from sectra_core.cache import TileCache  # one LRU for the mock's encoded and the client's decoded tiles

__all__ = [
    "TILE_FORMATS", "DEFAULT_TILE_CACHE_BYTES", "TileCache", "SlideImage", "open_slide_files",
    "tile_cache_bytes_from_env", "solid_tile", "synthetic_marker", "AVAILABLE_TILE_FORMATS",
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
_JPEG_QUALITY = 85

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
        image.convert("RGB").save(buf, "JPEG", quality=_JPEG_QUALITY)
    else:
        image.save(buf, "PNG", compress_level=1)  # speed over size: tiles are cached anyway
    return buf.getvalue()


def solid_tile(width: int, height: int, fmt: str, rgb: tuple[int, int, int]) -> bytes:
    """A tile of one colour, for slides whose files are not images (clearly synthetic)."""
    from PIL import Image

    return encode_image(Image.new("RGB", (max(1, width), max(1, height)), rgb), fmt)


class SlideImage:
    """One whole-slide image opened with OpenSlide: its metadata, DZI tiles and label.

    ``tile_size`` is the DZI tile size served (``tileSize`` in the slide info); the file's own
    tile size does not matter. Not created directly: use :func:`open_slide_files`.
    """

    def __init__(self, path: Path, slide: Any, tile_size: int) -> None:
        from openslide.deepzoom import DeepZoomGenerator

        self.path = path
        self.tile_size = tile_size
        self._slide = slide
        # limit_bounds=False: Sectra's imageSize is the full level-0 size, and the pyramid
        # maths of spec §6 start from it; overlap 0 (spec §4.7).
        self._dz = DeepZoomGenerator(slide, tile_size=tile_size, overlap=0, limit_bounds=False)
        self._lock = threading.Lock()
        self.vendor: str = slide.properties.get("openslide.vendor", "")
        # Iterate the names: ``in`` on OpenSlide's mapping would read and decode the image.
        self.has_label = "label" in list(slide.associated_images)

    def __repr__(self) -> str:
        return f"<SlideImage {self.path.name} {self.vendor} {self._slide.dimensions}>"

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 ``(width, height)``."""
        w, h = self._slide.dimensions
        return int(w), int(h)

    @property
    def level_count(self) -> int:
        """Number of DZI levels (``max_level + 1``)."""
        return int(self._dz.level_count)

    def image_fields(self) -> dict[str, Any]:
        """The ``ImageInfo`` fields the file determines (spec §5.4), by Struct field name."""
        props = self._slide.properties
        mpp = props.get("openslide.mpp-x")
        width, height = self.dimensions
        fields: dict[str, Any] = {
            "is_streamable": True,
            "image_size": s.Size(width=width, height=height),
            "tile_size": s.Size(width=self.tile_size, height=self.tile_size),
            "microns_per_pixel": float(mpp) if mpp else None,
            # OpenSlide exposes neither focal planes nor optical paths (it reads one plane of
            # brightfield RGB), so a slide from a file has exactly one of each.
            "focal_planes": [s.FocalPlane(id="0", offset_um=0.0)],
            "optical_paths": [s.OpticalPath(id="0", description="Brightfield")],
            "stored_tile_format": self._stored_format(),
            "available_tile_formats": list(AVAILABLE_TILE_FORMATS),
            "file_format": s.FileFormat(mime_type=_FILE_FORMATS.get(self.vendor, "application/octet-stream")),
        }
        return fields

    def _stored_format(self) -> s.TileFormat | None:
        props = self._slide.properties
        syntax = props.get("dicom.TransferSyntaxUID", "")
        comment = props.get("tiff.ImageDescription", "") + props.get("aperio.Description", "")
        if syntax.startswith("1.2.840.10008.1.2.4.5") or "JPEG/" in comment:
            return s.TileFormat(mime_type="image/jpeg", extension="jpg")
        if syntax.startswith("1.2.840.10008.1.2.4.9") or "J2K" in comment:
            return s.TileFormat(mime_type="image/jp2", extension="jp2")
        return None  # unknown: better absent than invented

    def level_grid(self, level: int) -> tuple[int, int] | None:
        """``(columns, rows)`` at DZI ``level``, or None if there is no such level."""
        if not 0 <= level < self.level_count:
            return None
        cols, rows = self._dz.level_tiles[level]
        return int(cols), int(rows)

    def render_tile(self, level: int, col: int, row: int, fmt: str) -> bytes:
        """The encoded tile (blocking: call it in a worker thread). The caller checked the address."""
        with self._lock:
            image = self._dz.get_tile(level, (col, row))
        return encode_image(image, fmt)

    def label_png(self) -> bytes | None:
        """The label associated image as PNG (lossless: it may hold a barcode), or None."""
        if not self.has_label:
            return None
        with self._lock:
            image = self._slide.associated_images["label"]
        return encode_image(image, "png")

    def close(self) -> None:
        """Close the OpenSlide handle."""
        with self._lock:
            self._slide.close()


def open_slide_files(files: Sequence[Path], tile_size: int = 240) -> SlideImage | None:
    """Open the whole-slide image among ``files`` with OpenSlide; None if none of them is one.

    For a multi-file format (DICOM WSI, MIRAX) any one file opens the whole slide; files are tried
    in order. A missing ``openslide`` package (the ``slides`` extra) is logged once and treated as
    "not a slide", so the mock still serves the files.
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
        return None
    return SlideImage(path, slide, tile_size)


def synthetic_marker(info: s.ImageInfo, files: Sequence[Path]) -> s.ImageInfo:
    """Mark invented metadata as such, where a person reading the slide info will see it."""
    names = ", ".join(Path(f).name for f in files[:3]) + (" ..." if len(files) > 3 else "")
    return msgspec.structs.replace(
        info,
        station_name="SYNTHETIC",
        specimen=s.Specimen(anatomy="synthetic", description=f"not a slide OpenSlide can read: {names}"),
    )
