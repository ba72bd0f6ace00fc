"""Bytes the mock sends that are not JSON: generated images, file bodies and multipart framing (spec §7)."""

from __future__ import annotations

import functools
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = [
    "png",
    "FileSource",
    "DiskFile",
    "SyntheticFile",
    "content_disposition",
    "multipart_parts",
    "multipart_length",
    "CHUNK",
]

#: Chunk size for streamed file bodies.
CHUNK = 1024 * 1024


@functools.lru_cache(maxsize=256)
def png(width: int, height: int, rgb: tuple[int, int, int] = (230, 200, 220)) -> bytes:
    """A valid PNG of one colour and the given size, without an imaging library."""
    width, height = max(1, width), max(1, height)
    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height, 6)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class FileSource:
    """A slide file the mock can serve: a name, a size, and chunks read on demand."""

    name: str
    size: int

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The file's bytes in chunks; never the whole file at once."""
        raise NotImplementedError


@dataclass
class DiskFile(FileSource):
    """A file on disk, served under ``name`` (its basename unless given)."""

    path: Path
    name: str = ""

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.name = self.name or self.path.name

    @property
    def size(self) -> int:  # type: ignore[override]
        """Current size on disk."""
        return self.path.stat().st_size

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Read the file in chunks."""
        with open(self.path, "rb") as f:
            while block := f.read(chunk_size):
                yield block


@dataclass
class SyntheticFile(FileSource):
    """Deterministic pseudo-random bytes of any size, generated on the fly (no disk, no RAM growth)."""

    name: str
    size: int
    seed: int = 0

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Alternate two seeded blocks (so neighbouring chunks differ); no per-chunk copying, so
        the mock streams as fast as hypercorn can send."""
        blocks = _blocks(self.seed, chunk_size)
        left, n = self.size, 0
        while left > 0:
            data = blocks[n % 2]
            piece = data if left >= chunk_size else data[:left]
            left -= len(piece)
            n += 1
            yield piece


_BLOCKS: dict[tuple[int, int], tuple[bytes, bytes]] = {}


def _blocks(seed: int, size: int) -> tuple[bytes, bytes]:
    key = (seed, size)
    if key not in _BLOCKS:
        import random

        block = random.Random(seed).randbytes(size)
        shift = 7919 % size if size > 1 else 0
        _BLOCKS[key] = (block, block[shift:] + block[:shift])
    return _BLOCKS[key]


def content_disposition(filename: str) -> str:
    """``attachment; filename="<the name, UTF-8>"``, after an RFC 5987 ``filename*`` when it is not ASCII.

    The UTF-8 name goes into ``filename=`` too, never a ``?`` stand-in: Sectra's downloader and
    the other peer clients read only ``filename=`` (spec §7) and would save ``Pr?parat.dcm``.
    ``filename=`` comes last: for a one-file slide those clients take *everything* after
    ``filename=`` (spec §7), so anything behind it would end up in the saved name; multipart parts
    (split on ``;``) and RFC 6266 clients (``filename*`` preferred) read either order.
    Quotes and backslashes are escaped; control characters (header injection) become ``_``.
    """
    plain = "".join("_" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in filename)
    value = 'filename="' + plain.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not filename.isascii():
        value = f"filename*=UTF-8''{quote(filename, safe='')}; " + value
    return "attachment; " + value


def _part_header(boundary: str, source: FileSource) -> bytes:
    return (
        f"--{boundary}\r\n"
        f"Content-Disposition: {content_disposition(source.name)}\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode("utf-8")


def multipart_parts(boundary: str, files: list[FileSource], chunk_size: int = CHUNK) -> Iterator[bytes]:
    """A ``multipart/related`` body in Sectra's framing (spec §7), chunk by chunk.

    ``--b CRLF headers CRLF CRLF data CRLF`` per part, then ``--b-- CRLF``.
    """
    for source in files:
        yield _part_header(boundary, source)
        yield from source.chunks(chunk_size)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def multipart_length(boundary: str, files: list[FileSource]) -> int:
    """The exact byte length of :func:`multipart_parts`' output, for ``Content-Length``."""
    total = len(f"--{boundary}--\r\n")
    for source in files:
        total += len(_part_header(boundary, source)) + source.size + 2
    return total


def random_boundary() -> str:
    """A boundary that cannot occur in random data by chance."""
    return "sectra-mock-" + os.urandom(12).hex()
