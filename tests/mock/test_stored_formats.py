"""``storedTileFormat`` from the file itself (issue 24): the TIFF Compression tag, read safely."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sectra_mock.stored_formats import FALLBACK, stored_tile_format, tiff_compression

PIXELS = np.zeros((300, 300, 3), np.uint8)


@pytest.mark.parametrize(("compression", "bigtiff", "byteorder", "tag", "mime"), [
    ("jpeg", False, "<", 7, "image/jpeg"),
    ("jpeg", True, ">", 7, "image/jpeg"),
    ("zlib", True, "<", 8, "image/png"),
    ("lzw", False, ">", 5, "image/png"),
    (None, False, "<", 1, "image/png"),
    ("zstd", False, "<", 50000, "image/png"),
    ("jpeg2000", False, "<", 34712, "image/jp2"),
    ("webp", False, "<", 50001, "image/webp"),
])
def test_tiff_compression_of_the_first_tiled_directory(
    tmp_path: Path, compression: str | None, bigtiff: bool, byteorder: str, tag: int, mime: str,
) -> None:
    path = tmp_path / "slide.tiff"
    with tifffile.TiffWriter(path, bigtiff=bigtiff, byteorder=byteorder) as tif:
        tif.write(PIXELS[:50, :50], photometric="rgb", metadata=None)  # a stripped page first: skipped
        tif.write(PIXELS, photometric="rgb", tile=(128, 128), compression=compression, metadata=None)
    assert tiff_compression(path) == tag
    found, where = stored_tile_format(path, "generic-tiff", {})
    assert (found.mime_type, where) == (mime, f"TIFF Compression {tag}")


def _tiff(entries: list[tuple[int, int, int]], next_ifd: int | None = None) -> bytes:
    """A classic little-endian TIFF with one directory of SHORT/LONG entries (tag, type, value)."""
    body = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in entries)
    return b"II*\0" + struct.pack("<I", 8) + body + struct.pack("<I", 8 if next_ifd is None else next_ifd)


def test_hostile_and_unknown_files(tmp_path: Path) -> None:
    cases = {
        "empty": b"", "text": b"hello world, not a tiff", "header-only": b"II*\0",
        "offset-past-end": b"II*\0" + struct.pack("<I", 10**9),
        "count-past-end": b"II*\0" + struct.pack("<I", 8) + struct.pack("<H", 4000),
        "bigtiff-cut": b"II+\0\x08\0\0\0",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert tiff_compression(tmp_path / name) is None, name
        assert stored_tile_format(tmp_path / name, "", {}) == (FALLBACK, ""), name
    # A directory pointing at itself is read a bounded number of times, then the answer is given.
    (tmp_path / "loop").write_bytes(_tiff([(259, 3, 7)]))
    assert tiff_compression(tmp_path / "loop") == 7
    # A compression nobody registered: the fallback, flagged as not told.
    (tmp_path / "odd").write_bytes(_tiff([(259, 3, 12345), (322, 3, 256)], next_ifd=0))
    assert tiff_compression(tmp_path / "odd") == 12345
    assert stored_tile_format(tmp_path / "odd", "generic-tiff", {}) == (FALLBACK, "")


@pytest.mark.parametrize(("syntax", "mime"), [
    ("1.2.840.10008.1.2.4.50", "image/jpeg"), ("1.2.840.10008.1.2.4.91", "image/jp2"),
    ("1.2.840.10008.1.2.4.202", "image/jp2"), ("1.2.840.10008.1.2.1", "image/png"),
    ("1.2.840.10008.1.2.5", "image/png"), ("1.2.840.10008.1.2.4.80", "image/jls"),
    ("1.2.840.10008.1.2.4.110", "image/jxl"),
])
def test_dicom_transfer_syntaxes(tmp_path: Path, syntax: str, mime: str) -> None:
    found, where = stored_tile_format(tmp_path / "i0.dcm", "dicom", {"dicom.TransferSyntaxUID": syntax})
    assert (found.mime_type, where) == (mime, f"DICOM transfer syntax {syntax}")
    assert stored_tile_format(tmp_path / "i0.dcm", "dicom", {"dicom.TransferSyntaxUID": "1.2.3"}) == (FALLBACK, "")


def test_vendor_properties(tmp_path: Path) -> None:
    mirax = {"mirax.LAYER_0_LEVEL_0_SECTION.IMAGE_FORMAT": "PNG"}
    assert stored_tile_format(tmp_path / "s.mrxs", "mirax", mirax)[0].mime_type == "image/png"
    assert stored_tile_format(tmp_path / "s.mrxs", "mirax", {})[1] == ""
    assert stored_tile_format(tmp_path / "s.vms", "hamamatsu", {})[0].mime_type == "image/jpeg"
    assert stored_tile_format(tmp_path / "s.vmu", "hamamatsu", {})[0].mime_type == "image/png"
    assert stored_tile_format(tmp_path / "s.svslide", "sakura", {})[0].mime_type == "image/jpeg"
