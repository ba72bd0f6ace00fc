"""Deterministic demo slides, generated at first use into a cache folder (never committed binaries).

A fresh mock serves these, so an app can run its real analysis on real pixels without a slide of its
own. Each is small (a few hundred KB), readable by OpenSlide, and the same bytes on every machine
for the same :data:`VERSION`, so tests can compare pixels:

* ``slide-001``: an Aperio-SVS-style pyramidal tiled TIFF (JPEG tiles, ``MPP`` in its
  ``ImageDescription``) with a ``label`` associated image;
* ``slide-002``: the same kind of file, portrait, without a label (the label endpoint answers 204);
* ``slide-003``: a multi-file DICOM WSI (one instance per pyramid level plus a label instance, named
  like Sectra's ``i0000,0000b.dcm`` parts, spec §4.9): the format Sectra stores, read by OpenSlide 4.

The folder is ``$SECTRA_DEMO_SLIDES_DIR`` or ``~/.cache/sectra-sdk/demo-slides/<VERSION>/``. Slides
are written to a temporary folder and renamed into place, so concurrent test processes never see a
half-written slide (the loser of a race just discards its copy).
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["VERSION", "DemoSlide", "DEMO_SLIDES", "demo_slides_dir", "ensure_demo_slides"]

#: Bump when the generated pixels or files change: a new version gets a new cache folder.
VERSION = "2"  # 2: nuclei painted by numpy, a palette blend, box-filtered levels (issue #14)

_BACKGROUND = (242, 241, 245)
_NUCLEUS = (85, 45, 130)
_TILE = 256  # the stored tile size of the files (the DZI tile size the mock serves is separate)
_QUALITY = 90


@dataclass(frozen=True)
class DemoSlide:
    """One demo slide: its id, pixel size, MPP, whether it has a label, and its on-disk format."""

    slide_id: str
    width: int
    height: int
    mpp: float
    seed: int
    label: bool
    kind: str  # "svs" or "dicom"
    staining: str = "HE"
    block: str = "A"

    @property
    def folder_name(self) -> str:
        """The slide's folder inside the cache (one folder per slide, files inside)."""
        return self.slide_id


#: The demo slides every fresh mock holds; one case (accession number) holds them all.
DEMO_SLIDES: tuple[DemoSlide, ...] = (
    DemoSlide("slide-001", 2400, 1800, 0.25, seed=1, label=True, kind="svs"),
    DemoSlide("slide-002", 1536, 2048, 0.5, seed=2, label=False, kind="svs", block="B"),
    DemoSlide("slide-003", 2000, 1500, 0.25, seed=3, label=True, kind="dicom", staining="Ki67"),
)

#: The accession number of the demo case.
DEMO_ACCESSION = "A2025000000001"

_lock = threading.Lock()


def demo_slides_dir() -> Path:
    """Where the demo slides live: ``$SECTRA_DEMO_SLIDES_DIR`` or the user cache folder."""
    env = os.environ.get("SECTRA_DEMO_SLIDES_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sectra-sdk" / "demo-slides" / VERSION


def ensure_demo_slides(folder: Path | None = None, slides: Iterable[DemoSlide] = DEMO_SLIDES) -> dict[str, list[Path]]:
    """Generate any missing demo slide into ``folder`` (default :func:`demo_slides_dir`).

    Returns slide id → its files (sorted). Generating all three takes about a second of CPU
    (numpy and Pillow; it took 2.4 s before the nuclei were vectorised). ``slides`` may name
    others (a benchmark's bigger slide), cached and written the same way.
    """
    root = folder or demo_slides_dir()
    found: dict[str, list[Path]] = {}
    with _lock:  # threads of one process; other processes are handled by the atomic rename
        for demo in slides:
            target = root / demo.folder_name
            if not target.is_dir():
                root.mkdir(parents=True, exist_ok=True)
                tmp = Path(tempfile.mkdtemp(prefix=f".{demo.slide_id}-", dir=root))
                try:
                    _write(demo, tmp)
                    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is not secret
                    try:
                        os.rename(tmp, target)
                    except OSError:
                        if not target.is_dir():  # not "another process won the race"
                            raise
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
            found[demo.slide_id] = sorted(p for p in target.iterdir() if p.is_file())
    return found


# --- pixels -------------------------------------------------------------------------------------


def tissue(width: int, height: int, seed: int) -> Any:
    """An RGB ``uint8`` array that looks like H&E-stained tissue on glass: smooth pink blobs with
    purple nuclei on a near-white background. Deterministic for (width, height, seed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)

    def smooth(cells: int) -> Any:
        # Coarse random grid, bicubically upsampled: a cheap low-frequency noise field, 0..255.
        small = rng.random((max(2, height * cells // width), cells), dtype=np.float32)
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
        return np.asarray(img)

    blobs = smooth(7)
    shade = smooth(23)
    mask = blobs > 132  # 0.52 of full scale: tissue covers about half the glass
    # The shade field has 256 values, so the pink-to-purple blend is a 256-entry palette looked up
    # per pixel (float maths on every pixel took a third of a second per slide).
    t = np.arange(256, dtype=np.float32)[:, None] / 255.0
    palette = (np.array([232, 150, 190], np.float32) * (1 - t) + np.array([190, 95, 160], np.float32) * t).astype(np.uint8)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = _BACKGROUND
    image[mask] = palette[shade[mask]]
    # Nuclei: discs of radius 2..5 on a 9-pixel grid over the tissue, a third of the grid points.
    # Painted offset by offset (at most 121 of them) over all nuclei at once: numpy, no Python loop
    # per nucleus (the per-nucleus ImageDraw loop took most of the 2.4 s generation, issue #14).
    ys, xs = np.nonzero(mask[::9, ::9])
    keep = rng.random(len(xs)) < 0.35
    radii = rng.integers(2, 6, size=len(xs))[keep]
    cy, cx = ys[keep] * 9, xs[keep] * 9
    for dy in range(-5, 6):
        for dx in range(-5, 6):
            inside = radii * radii >= dy * dy + dx * dx
            py, px = cy[inside] + dy, cx[inside] + dx
            ok = (py >= 0) & (py < height) & (px >= 0) & (px < width)
            image[py[ok], px[ok]] = _NUCLEUS
    return image


def label_image(demo: DemoSlide) -> Any:
    """A slide label: white card, a dark stripe and the slide id in text (no real PHI)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (320, 240), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 319, 50), fill=(30, 60, 120))
    draw.text((16, 80), f"DEMO {demo.slide_id}", fill=(0, 0, 0))
    draw.text((16, 120), f"{demo.staining} block {demo.block}", fill=(0, 0, 0))
    for i in range(12):  # a mock barcode
        draw.rectangle((16 + i * 12, 170, 16 + i * 12 + (3 if i % 3 else 7), 220), fill=(0, 0, 0))
    return image


def _levels(array: Any) -> Iterator[Any]:
    # Aperio-style pyramid: each level a quarter of the one above, down to about one tile.
    import numpy as np
    from PIL import Image

    image = Image.fromarray(array)
    yield array
    while max(image.size) > _TILE:
        # A 4x4 box average (sizes round down, as Aperio's do): a tenth of LANCZOS's cost, and the
        # levels are OpenSlide's to read, not to be judged by eye.
        image = image.reduce(4) if min(image.size) >= 4 else image.resize((max(1, image.width // 4), max(1, image.height // 4)))
        yield np.asarray(image)


def _jpeg_tiles(level: Any) -> Iterator[bytes]:
    # Each tile a complete JPEG (edge tiles padded with background), row by row, as TIFF and
    # DICOM TILED_FULL both store them.
    import numpy as np

    h, w = level.shape[:2]
    for y in range(0, h, _TILE):
        for x in range(0, w, _TILE):
            tile = np.empty((_TILE, _TILE, 3), np.uint8)
            tile[:] = _BACKGROUND
            part = level[y : y + _TILE, x : x + _TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            yield _jpeg(tile)


def _jpeg(array: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG", quality=_QUALITY)
    return buf.getvalue()


def _write(demo: DemoSlide, folder: Path) -> None:
    pixels = tissue(demo.width, demo.height, demo.seed)
    if demo.kind == "svs":
        _write_svs(demo, pixels, folder / f"{demo.slide_id}.svs")
    else:
        _write_dicom(demo, pixels, folder)


def _write_svs(demo: DemoSlide, pixels: Any, path: Path) -> None:
    from PIL import Image

    # OpenSlide's Aperio reader: tiled directories are levels; the second directory (stripped) is
    # the thumbnail; a later stripped directory whose description's second line starts with
    # "label" is the label. MPP comes from the "MPP = " field of the first description.
    head = f"Aperio Image Library v12.0.0 \r\n{demo.width}x{demo.height} [0,0 {demo.width}x{demo.height}] ({_TILE}x{_TILE}) JPEG/YCbCr Q={_QUALITY}"
    pages: list[_Page] = []
    for i, level in enumerate(_levels(pixels)):
        h, w = level.shape[:2]
        desc = f"{head}|AppMag = 40|MPP = {demo.mpp:.4f}|Filename = {demo.slide_id}" if i == 0 else head
        pages.append(_Page(w, h, desc, tiles=list(_jpeg_tiles(level)), reduced=i > 0))
        if i == 0:
            thumb = Image.fromarray(pixels)
            thumb.thumbnail((256, 256))
            pages.append(_Page(thumb.width, thumb.height, f"{head}\r\nthumbnail", strip=thumb.tobytes(), reduced=True))
    if demo.label:
        label = label_image(demo)
        desc = f"Aperio Image Library v12.0.0\r\nlabel {label.width}x{label.height}"
        pages.append(_Page(label.width, label.height, desc, strip=label.tobytes(), reduced=True))
    _write_tiff(path, pages)


@dataclass
class _Page:
    """One TIFF directory: JPEG tiles (a level) or one uncompressed RGB strip (thumbnail, label)."""

    width: int
    height: int
    description: str
    tiles: list[bytes] | None = None
    strip: bytes | None = None
    reduced: bool = False


def _write_tiff(path: Path, pages: list[_Page]) -> None:
    """A classic little-endian TIFF (baseline tags + tiles, TIFF 6.0 §15, JPEG tiles per §22).

    Written by hand: tifffile cannot store already-encoded JPEG tiles without imagecodecs, and
    these few tags are all OpenSlide needs.
    """
    import struct

    out = bytearray(b"II*\0\0\0\0\0")
    next_ptr = 4  # where the offset of the next IFD goes

    def blob(data: bytes) -> int:
        if len(out) % 2:
            out.append(0)
        offset = len(out)
        out.extend(data)
        return offset

    for page in pages:
        entries: list[tuple[int, int, list[int] | bytes]] = []  # tag, type, values
        chunks = page.tiles if page.tiles is not None else [page.strip or b""]
        offsets = [blob(c) for c in chunks]
        counts = [len(c) for c in chunks]
        entries.append((254, 4, [1 if page.reduced else 0]))  # NewSubfileType
        entries += [(256, 4, [page.width]), (257, 4, [page.height]), (258, 3, [8, 8, 8])]
        entries.append((259, 3, [7 if page.tiles is not None else 1]))  # Compression: JPEG / none
        # JPEG tiles hold YCbCr 4:2:0 (Pillow's default), which the Photometric tag must say.
        entries.append((262, 3, [6 if page.tiles is not None else 2]))
        entries.append((270, 2, page.description.encode("ascii") + b"\0"))
        if page.tiles is None:
            entries += [(273, 4, offsets), (277, 3, [3]), (278, 4, [page.height]), (279, 4, counts)]
        else:
            entries.append((277, 3, [3]))
        entries.append((284, 3, [1]))  # PlanarConfiguration: contiguous
        if page.tiles is not None:
            entries += [(322, 3, [_TILE]), (323, 3, [_TILE]), (324, 4, offsets), (325, 4, counts)]
            entries.append((530, 3, [2, 2]))  # YCbCrSubSampling
        packed: list[bytes] = []
        for tag, typ, values in sorted(entries, key=lambda e: e[0]):
            if isinstance(values, bytes):
                raw, count = values, len(values)
            else:
                raw, count = struct.pack(f"<{len(values)}{'H' if typ == 3 else 'I'}", *values), len(values)
            field = raw.ljust(4, b"\0") if len(raw) <= 4 else struct.pack("<I", blob(raw))
            packed.append(struct.pack("<HHI", tag, typ, count) + field)
        ifd = blob(struct.pack("<H", len(packed)) + b"".join(packed) + b"\0\0\0\0")
        struct.pack_into("<I", out, next_ptr, ifd)
        next_ptr = ifd + 2 + 12 * len(packed)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(out)
    tmp.rename(path)


def _uid(demo: DemoSlide, part: int) -> str:
    # Deterministic UIDs under the "2.25" (UUID-derived) root, so regenerated files are identical.
    import hashlib

    digest = hashlib.sha256(f"sectra-demo/{VERSION}/{demo.slide_id}/{part}".encode()).digest()
    return f"2.25.{int.from_bytes(digest[:15], 'big')}"


def _write_dicom(demo: DemoSlide, pixels: Any, folder: Path) -> None:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import UID, JPEGBaseline8Bit, PYDICOM_IMPLEMENTATION_UID

    wsi_class = UID("1.2.840.10008.5.1.4.1.1.77.1.6")  # VL Whole Slide Microscopy Image Storage
    study, series, frame_of_ref = _uid(demo, 1000), _uid(demo, 1001), _uid(demo, 1002)
    stamp = datetime.datetime(2025, 8, 13, 7, 45, 42)
    # One instance per pyramid level; a level's MPP from its real width ratio (sizes round down).
    parts: list[tuple[str, Any, float]] = [
        ("VOLUME", level, demo.mpp * pixels.shape[1] / level.shape[1]) for level in _levels(pixels)
    ]
    if demo.label:
        parts.append(("LABEL", np.asarray(label_image(demo)), 0.0))
    for n, (flavor, array, level_mpp) in enumerate(parts):
        h, w = array.shape[:2]
        ds = Dataset()
        ds.SOPClassUID = wsi_class
        ds.SOPInstanceUID = _uid(demo, n)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.Modality = "SM"
        ds.ImageType = ["ORIGINAL", "PRIMARY", flavor, "NONE"] if flavor == "VOLUME" else ["ORIGINAL", "PRIMARY", "LABEL", "NONE"]
        ds.PatientName, ds.PatientID = "DEMO^SLIDE", "DEMO"
        ds.StudyDate, ds.StudyTime = stamp.strftime("%Y%m%d"), stamp.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
        ds.AccessionNumber = DEMO_ACCESSION
        ds.Manufacturer = "sectra-sdk demo"
        ds.InstanceNumber = n + 1
        ds.SeriesNumber = 1
        ds.ContainerIdentifier = demo.slide_id
        ds.DimensionOrganizationType = "TILED_FULL"
        ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = w, h
        ds.TotalPixelMatrixFocalPlanes = 1
        ds.NumberOfOpticalPaths = 1
        ds.ImagedVolumeWidth = w * max(level_mpp, demo.mpp) / 1000
        ds.ImagedVolumeHeight = h * max(level_mpp, demo.mpp) / 1000
        ds.ImagedVolumeDepth = 0.001
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.LossyImageCompression = "01"
        if flavor == "LABEL":
            # OpenSlide reads an associated image as one frame of the full size.
            ds.Rows, ds.Columns = h, w
            tiles = [_jpeg(array)]
        else:
            ds.Rows = ds.Columns = _TILE
            tiles = list(_jpeg_tiles(array))
        ds.NumberOfFrames = len(tiles)
        opt = Dataset()
        opt.OpticalPathIdentifier = "1"
        opt.IlluminationTypeCodeSequence = Sequence([_code("111744", "DCM", "Brightfield illumination")])
        opt.IlluminationColorCodeSequence = Sequence([_code("414298005", "SCT", "Full Spectrum")])
        ds.OpticalPathSequence = Sequence([opt])
        measures = Dataset()
        spacing = (level_mpp or demo.mpp) / 1000  # mm
        measures.PixelSpacing = [f"{spacing:.10g}", f"{spacing:.10g}"]
        measures.SliceThickness = 0.001
        shared = Dataset()
        shared.PixelMeasuresSequence = Sequence([measures])
        ds.SharedFunctionalGroupsSequence = Sequence([shared])
        ds.PixelData = encapsulate(tiles)
        ds["PixelData"].VR = "OB"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = wsi_class
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = JPEGBaseline8Bit
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        # Sectra names the parts of a DICOM slide like this (spec §4.9), comma included.
        ds.save_as(folder / f"i{n:04d},0000b.dcm", enforce_file_format=True)


def _code(value: str, scheme: str, meaning: str) -> Any:
    from pydicom.dataset import Dataset

    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code
