"""Slides written by tools other than this project, for the differential matrix (issue 24).

tifffile writes generic tiled TIFFs and Aperio-SVS-style files (with a label); wsidicomizer turns one
of them into a DICOM WSI series. Sizes are odd on purpose (never a multiple of a tile size), pyramids
downsample by 2 or by 4, with and without resolution tags. Each slide is small (<= 3001 px a side) and
deterministic. They are generated at first use into a cache folder, never the repository:
``$SECTRA_TEST_SLIDES_DIR`` or ``$XDG_CACHE_HOME/sectra-sdk/test-slides/<VERSION>/`` (``~/.cache``
without XDG), written into a temporary folder and renamed into place, as the demo slides are.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when the generated files change: a new version gets a new cache folder.
VERSION = "3"


@dataclass(frozen=True)
class MatrixSlide:
    """One generated slide: how it is written and what OpenSlide should find in it."""

    name: str
    width: int
    height: int
    kind: str  # "tiff" (generic tiled TIFF), "svs" (Aperio style) or "dicom" (wsidicomizer from an svs)
    compression: str  # tifffile's name: "jpeg", "zlib" (deflate), "lzw", "none"
    downsample: int  # 2 or 4 between stored levels
    mpp: float | None  # None: no resolution in the file
    label: bool = False
    tile: int = 256  # the file's own tile size
    seed: int = 0

    @property
    def expected_mime(self) -> str:
        """The ``storedTileFormat`` the mock must report for this file's tiles."""
        return "image/jpeg" if self.compression == "jpeg" else "image/png"


#: The matrix: every axis of issue 24 (tool, odd sizes, pyramid factor, resolution tags, compression).
MATRIX: tuple[MatrixSlide, ...] = (
    MatrixSlide("tiff-jpeg-by2-res", 3001, 2203, "tiff", "jpeg", 2, 0.5, seed=1),
    MatrixSlide("tiff-zlib-by4-nores", 2999, 1001, "tiff", "zlib", 4, None, tile=128, seed=2),
    MatrixSlide("tiff-lzw-by2-nores-portrait", 1001, 2047, "tiff", "lzw", 2, None, seed=3),
    MatrixSlide("svs-jpeg-by4-label", 2501, 1799, "svs", "jpeg", 4, 0.2527, label=True, seed=4),
    MatrixSlide("svs-jpeg-by2-nomppp", 1537, 999, "svs", "jpeg", 2, None, label=True, seed=5),
    MatrixSlide("dicom-jpeg-by2", 2001, 1499, "dicom", "jpeg", 2, 0.25, label=True, seed=6),
    # 961x481: levels 481x241 and 241x121 end one pixel past a tile (ceil), a server rounding
    # down has no tile there at all.
    MatrixSlide("tiff-jpeg-sliver", 961, 481, "tiff", "jpeg", 2, 0.5, seed=7),
)

_lock = threading.Lock()


def slides_dir() -> Path:
    """The cache folder of the generated slides."""
    env = os.environ.get("SECTRA_TEST_SLIDES_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sectra-sdk" / "test-slides" / VERSION


def ensure(slide: MatrixSlide, folder: Path | None = None) -> list[Path]:
    """The slide's files (sorted), generated first if missing; atomic as the demo slides."""
    root = folder or slides_dir()
    target = root / slide.name
    with _lock:
        if not target.is_dir():
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{slide.name}-", dir=root))
            try:
                _WRITERS[slide.kind](slide, tmp)
                tmp.chmod(0o755)
                try:
                    os.rename(tmp, target)
                except OSError:
                    if not target.is_dir():
                        raise
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    return sorted(p for p in target.iterdir() if p.is_file())


# --- pixels ---------------------------------------------------------------------------------------


def pixels(width: int, height: int, seed: int) -> Any:
    """Deterministic RGB "tissue": smooth blobs with fine texture and sharp edges up to the border,
    so a misplaced edge row or column shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), dtype=np.float32)
    for channel in range(3):
        fx, fy = rng.uniform(0.002, 0.02, 2)
        px, py = rng.uniform(0, 6.28, 2)
        image[..., channel] = 150 + 60 * np.sin(xx * fx + px) * np.cos(yy * fy + py)
    image += rng.normal(0, 2, (height, width, 1)).astype(np.float32)  # faint grain: JPEG noise stays low
    # Bands with sharp edges (32 px at full resolution, still 4 px at an eighth): a tile pasted a
    # pixel off, or an edge line left out, shows as a large difference at every level read.
    image[(yy.astype(np.int32) // 32) % 4 == 0] *= 0.7
    image[:, (np.arange(width) // 32) % 5 == 0] *= 0.8
    return np.clip(image, 0, 255).astype(np.uint8)


def _levels(base: Any, factor: int, tile: int) -> Iterator[Any]:
    """The stored pyramid: box-filtered by ``factor`` (sizes rounded down, as scanners do) down to one tile."""
    from PIL import Image

    level = base
    yield level
    while max(level.shape[:2]) > tile:
        h, w = level.shape[:2]
        size = (max(1, w // factor), max(1, h // factor))
        level = np.asarray(Image.fromarray(base).resize(size, Image.Resampling.BOX))
        yield level


def _label(seed: int) -> Any:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (301, 201), (250, 250, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 290, 60), fill=(20, 20, 20))
    draw.text((20, 100), f"MATRIX {seed}", fill=(0, 0, 0))
    return np.asarray(image)


def _tiff_kwargs(slide: MatrixSlide) -> dict[str, Any]:
    kw: dict[str, Any] = {"photometric": "rgb", "tile": (slide.tile, slide.tile), "metadata": None}
    if slide.compression != "none":
        kw["compression"] = slide.compression
        if slide.compression == "jpeg":
            kw["compressionargs"] = {"level": 90}
    return kw


def _write_tiff(slide: MatrixSlide, folder: Path) -> None:
    import tifffile

    base = pixels(slide.width, slide.height, slide.seed)
    with tifffile.TiffWriter(folder / f"{slide.name}.tiff") as tif:
        for i, level in enumerate(_levels(base, slide.downsample, slide.tile)):
            kw = _tiff_kwargs(slide)
            if slide.mpp is not None:
                per_cm = 1e4 / (slide.mpp * (slide.width / level.shape[1]))
                kw.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
            tif.write(level, subfiletype=1 if i else 0, **kw)


def _write_svs(slide: MatrixSlide, folder: Path) -> None:
    import tifffile
    from PIL import Image

    base = pixels(slide.width, slide.height, slide.seed)
    head = (f"Aperio Image Library v12.0.15\r\n{slide.width}x{slide.height} [0,0 {slide.width}x{slide.height}] "
            f"({slide.tile}x{slide.tile}) JPEG/RGB Q=90")
    fields = "|AppMag = 20" + (f"|MPP = {slide.mpp}" if slide.mpp is not None else "")
    with tifffile.TiffWriter(folder / f"{slide.name}.svs") as tif:
        for i, level in enumerate(_levels(base, slide.downsample, slide.tile)):
            tif.write(level, description=head + (fields if i == 0 else ""), **_tiff_kwargs(slide))
            if i == 0:  # Aperio's second directory: a stripped thumbnail
                thumb = Image.fromarray(base)
                thumb.thumbnail((256, 256))
                tif.write(np.asarray(thumb), description=head + "\r\nthumbnail", photometric="rgb", metadata=None)
        if slide.label:
            label = _label(slide.seed)
            tif.write(label, description=f"Aperio Image Library v12.0.15\r\nlabel {label.shape[1]}x{label.shape[0]}",
                      photometric="rgb", subfiletype=1, metadata=None)


def _write_dicom(slide: MatrixSlide, folder: Path) -> None:
    # wsidicomizer converts an SVS written by tifffile. Its default source (opentile) needs the
    # libturbojpeg shared library; the tiffslide source reads with tifffile and re-encodes the tiles
    # with wsidicom's own JPEG encoder, so nothing outside PyPI is needed.
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # pydicom deprecations raised by wsidicom's own imports and calls: that tool's business.
        warnings.simplefilter("ignore", DeprecationWarning)
        from wsidicomizer import WsiDicomizer
        from wsidicomizer.sources import TiffSlideSource

        source = MatrixSlide(slide.name, slide.width, slide.height, "svs", "jpeg", slide.downsample, slide.mpp,
                             label=slide.label, tile=slide.tile, seed=slide.seed)
        _write_svs(source, Path(scratch))
        WsiDicomizer.convert(Path(scratch) / f"{slide.name}.svs", folder, tile_size=slide.tile, workers=1,
                             include_overview=False, include_thumbnail=False, preferred_source=TiffSlideSource)


_WRITERS: dict[str, Callable[[MatrixSlide, Path], None]] = {
    "tiff": _write_tiff, "svs": _write_svs, "dicom": _write_dicom,
}
