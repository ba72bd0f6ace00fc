"""``storedTileFormat`` (spec §5.4, "compression in scanner file") read from a slide file itself.

Every Sectra client model requires the field, so the mock reports it for every slide OpenSlide
reads, from the most direct evidence the file holds:

* TIFF-based files (generic tiled TIFF, Aperio SVS, Hamamatsu NDPI, Philips, Ventana, Leica,
  Trestle): the ``Compression`` tag (259) of the first tiled directory, read from the file's header
  here (OpenSlide does not expose it);
* DICOM WSI: the transfer syntax (``dicom.TransferSyntaxUID``, which OpenSlide reports);
* other vendors: what their properties or file type say (MIRAX ``IMAGE_FORMAT``, Hamamatsu VMS
  JPEG files, Sakura's JPEG tiles).

Lossless compressions (none, LZW, deflate, PackBits, zstd, RLE) are reported as ``image/png``: the
lossless tile format the mock serves, which is what a client should ask for to see the file's own
pixels. A file whose compression cannot be told gets :data:`FALLBACK` and a warning (the server
logs it naming the file): never an absent field.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

from sectra_core import schemas as s

__all__ = ["FALLBACK", "stored_tile_format", "tiff_compression"]

_JPEG = s.TileFormat(mime_type="image/jpeg", extension="jpg")
_JP2 = s.TileFormat(mime_type="image/jp2", extension="jp2")
_PNG = s.TileFormat(mime_type="image/png", extension="png")  # lossless in the file
_WEBP = s.TileFormat(mime_type="image/webp", extension="webp")
_JXL = s.TileFormat(mime_type="image/jxl", extension="jxl")
_JLS = s.TileFormat(mime_type="image/jls", extension="jls")

#: Reported, with a warning, when the file does not tell: JPEG, what nearly every scanner stores.
FALLBACK = _JPEG

#: TIFF ``Compression`` tag values (TIFF 6.0 and the registered extensions) → stored format.
_TIFF: Mapping[int, s.TileFormat] = {
    1: _PNG, 5: _PNG, 8: _PNG, 32946: _PNG, 32773: _PNG, 50000: _PNG, 34925: _PNG,  # none, LZW, deflate, PackBits, zstd, LZMA
    6: _JPEG, 7: _JPEG, 34892: _JPEG,  # old-style JPEG, JPEG, lossy JPEG
    33003: _JP2, 33004: _JP2, 33005: _JP2, 34712: _JP2,  # Aperio J2K (YCbCr, RGB), JPEG 2000
    50001: _WEBP, 34927: _WEBP, 50002: _JXL, 52546: _JXL,
}

#: DICOM transfer syntax UIDs (PS3.5 §10 and Annex A) → stored format.
_DICOM: Mapping[str, s.TileFormat] = {
    "1.2.840.10008.1.2": _PNG, "1.2.840.10008.1.2.1": _PNG, "1.2.840.10008.1.2.2": _PNG,
    "1.2.840.10008.1.2.1.99": _PNG, "1.2.840.10008.1.2.5": _PNG,  # implicit/explicit VR, deflated, RLE
    "1.2.840.10008.1.2.4.50": _JPEG, "1.2.840.10008.1.2.4.51": _JPEG,
    "1.2.840.10008.1.2.4.57": _JPEG, "1.2.840.10008.1.2.4.70": _JPEG,
    "1.2.840.10008.1.2.4.80": _JLS, "1.2.840.10008.1.2.4.81": _JLS,
    "1.2.840.10008.1.2.4.90": _JP2, "1.2.840.10008.1.2.4.91": _JP2,
    "1.2.840.10008.1.2.4.201": _JP2, "1.2.840.10008.1.2.4.202": _JP2, "1.2.840.10008.1.2.4.203": _JP2,
    "1.2.840.10008.1.2.4.110": _JXL, "1.2.840.10008.1.2.4.111": _JXL, "1.2.840.10008.1.2.4.112": _JXL,
}

_MIRAX = {"JPEG": _JPEG, "PNG": _PNG, "BMP24": _PNG}

#: Directories read before giving up on finding a tiled one (a file is not walked forever).
_MAX_DIRECTORIES = 64


def tiff_compression(path: Path) -> int | None:
    """The ``Compression`` tag of the first tiled directory of a TIFF or BigTIFF file, or None.

    Reads a few hundred bytes per directory; every offset and count is checked against the file's
    size before it is used, so a truncated or hostile file gives None, never a large read.
    """
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            head = f.read(16)
            if len(head) < 8 or head[:2] not in (b"II", b"MM"):
                return None
            order = "<" if head[:2] == b"II" else ">"
            magic = struct.unpack(order + "H", head[2:4])[0]
            if magic == 42:
                offset, count_fmt, entry_fmt, entry_size, ptr_fmt = struct.unpack(order + "I", head[4:8])[0], "H", "HHI", 12, "I"
            elif magic == 43 and len(head) == 16:
                offset, count_fmt, entry_fmt, entry_size, ptr_fmt = struct.unpack(order + "Q", head[8:16])[0], "Q", "HHQ", 20, "Q"
            else:
                return None
            value_at = struct.calcsize(order + entry_fmt)
            first: int | None = None
            for _ in range(_MAX_DIRECTORIES):
                count_size = struct.calcsize(count_fmt)
                if not 8 <= offset <= size - count_size:
                    break
                f.seek(offset)
                (count,) = struct.unpack(order + count_fmt, f.read(count_size))
                if count > 4096 or offset + count_size + count * entry_size > size:
                    break
                table = f.read(count * entry_size)
                tags: dict[int, int] = {}
                for i in range(count):
                    entry = table[i * entry_size:(i + 1) * entry_size]
                    tag, kind, _n = struct.unpack(order + entry_fmt, entry[:value_at])
                    if tag in (259, 322):  # Compression, TileWidth: SHORT or LONG, stored inline
                        fmt = "H" if kind == 3 else "I" if kind == 4 else None
                        if fmt is not None:
                            tags[tag] = struct.unpack(order + fmt, entry[value_at:value_at + struct.calcsize(fmt)])[0]
                if 259 in tags:
                    if 322 in tags:
                        return tags[259]
                    first = tags[259] if first is None else first
                (offset,) = struct.unpack(order + ptr_fmt, f.read(struct.calcsize(ptr_fmt)))
            return first
    except (OSError, struct.error):
        return None


def stored_tile_format(path: Path, vendor: str, properties: Mapping[str, str]) -> tuple[s.TileFormat, str]:
    """The file's stored tile format and where it was read (``"TIFF Compression 7"``, ...).

    ``vendor`` and ``properties`` are OpenSlide's (``openslide.vendor``); the second element is
    ``""`` when nothing told and :data:`FALLBACK` is returned (warn about it).
    """
    syntax = properties.get("dicom.TransferSyntaxUID", "").strip()
    if syntax:
        found = _DICOM.get(syntax)
        return (found, f"DICOM transfer syntax {syntax}") if found else (FALLBACK, "")
    if vendor == "mirax":
        kind = next((v for k, v in properties.items() if k.endswith("LEVEL_0_SECTION.IMAGE_FORMAT")), "")
        found = _MIRAX.get(kind.strip().upper())
        return (found, f"MIRAX IMAGE_FORMAT {kind}") if found else (FALLBACK, "")
    if vendor == "hamamatsu" and path.suffix.lower() in (".vms", ".vmu"):
        # VMS slides are JPEG files; VMU slides hold uncompressed NGR pixels.
        return (_JPEG, "Hamamatsu VMS (JPEG files)") if path.suffix.lower() == ".vms" else (_PNG, "Hamamatsu VMU (uncompressed)")
    if vendor == "sakura":
        return _JPEG, "Sakura SVSlide (JPEG tiles)"
    compression = tiff_compression(path)
    if compression is not None:
        found = _TIFF.get(compression)
        return (found, f"TIFF Compression {compression}") if found else (FALLBACK, "")
    return FALLBACK, ""
