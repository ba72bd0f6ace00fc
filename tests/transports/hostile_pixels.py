"""Hostile pixels and metadata (issue 27): each attack as a function, run in a child process.

``python -m tests.transports.hostile_pixels NAME...`` runs the named attacks one after the other
in this process and prints one JSON line per attack (the exception's class, whether it is a
``SectraError``, the seconds it took), then one line with the process's peak RSS (``VmHWM``).
tests/transports/test_hostile_pixels.py runs them all in one child and asserts both;
bench/hostile_pixels.py runs each in a child of its own (capped by ``RLIMIT_AS``) for the
before/after figures of the note.

Every attack is real: a loopback HTTP server sends the hostile info, label and tiles to the
SDK's blocking client, and the mock reads a real TIFF file from disk.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "hostile-token"
#: Side of the PNG bombs: 20000 (1.6 GB decoded) for the bench's figures; the test uses 9000
#: (324 MB decoded as RGBX: past its 300 MB bar, and 5x quicker to build).
BOMB = int(os.environ.get("SECTRA_HOSTILE_BOMB_SIDE", "20000"))


@functools.cache
def png_bomb(width: int, height: int) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` black pixels, made row by row (a few hundred KB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    squeeze = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def small_png(width: int = 256, height: int = 256) -> bytes:
    return png_bomb(width, height)


class SlideServer:
    """A loopback IA-API server for one slide: its info (a dict), its label and its tiles
    (``tile(level, col, row) -> (status, bytes)``)."""

    def __init__(self, info: dict[str, Any], *, label: bytes | None = None,
                 tile: Callable[[int, int, int], tuple[int, bytes]] | None = None) -> None:
        self.info, self.label = info, label
        self.tile = tile or (lambda level, col, row: (200, small_png()))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?")[0]
                status, kind, body = 404, "application/json", b'{"message": "no"}'
                if path.endswith("/info") and "/slides/" in path:
                    status, body = 200, json.dumps(owner.info).encode()
                elif path.endswith("/label"):
                    status, kind, body = (204, "image/png", b"") if owner.label is None else (200, "image/png", owner.label)
                elif "_files/" in path:
                    parts = path.rsplit("/", 2)
                    try:
                        level = int(parts[-2])
                        col, row = (int(v) for v in parts[-1].split(".")[0].split("_"))
                        status, body = owner.tile(level, col, row)
                        kind = "image/png"
                    except ValueError:
                        pass
                elif path.endswith("/info") or path.endswith("/version"):
                    status, body = 200, b'{"apiVersion": "1.10", "softwareVersion": "1.10"}'
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> SlideServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def info(width: int, height: int, tile: int = 256, mpp: float | None = 0.25) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": "s1", "isStreamable": True, "imageSize": {"width": width, "height": height},
        "tileSize": {"width": tile, "height": tile},
        "focalPlanes": [{"id": "0", "offsetUm": 0.0}], "opticalPaths": [{"id": "0", "description": "Brightfield"}],
    }
    if mpp is not None:
        out["micronsPerPixel"] = mpp
    return out


def _client(url: str) -> Any:
    from sectra_client import SectraClient
    from sectra_core.retry import NO_RETRY

    return SectraClient(url, TOKEN, retry=NO_RETRY)


def attack_tile_bomb() -> None:
    """A BOMB x BOMB PNG (a few hundred KB) served as a 256x256 tile, Pillow's limit off."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # what many WSI users set: the SDK must not depend on it
    bomb = png_bomb(BOMB, BOMB)
    with SlideServer(info(1024, 1024), tile=lambda *_: (200, bomb)) as server, _client(server.url) as client:
        client.open_slide("s1", ext="png").read_region((0, 0), 0, (256, 256))


def attack_sliver_bomb() -> None:
    """The same bomb as the neighbour of a missing one-pixel edge tile (the stand-in path)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    bomb = png_bomb(BOMB, BOMB)

    def tile(level: int, col: int, row: int) -> tuple[int, bytes]:
        return (404, b"") if col == 1 else (200, bomb)

    # 257 wide at tile 256: column 1 of level 9 is one pixel wide.
    with SlideServer(info(257, 256), tile=tile) as server, _client(server.url) as client:
        client.open_slide("s1", ext="png").read_region((250, 0), 0, (7, 8))


def attack_label_bomb_open() -> None:
    """A BOMB x BOMB PNG label: open_slide must not decode it (the caller did not ask)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with SlideServer(info(1024, 1024), label=png_bomb(BOMB, BOMB)) as server, _client(server.url) as client:
        slide = client.open_slide("s1")
        assert list(slide.associated_images) == ["label"]


def attack_label_bomb_read() -> None:
    """The same label, read: refused from its header."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with SlideServer(info(1024, 1024), label=png_bomb(BOMB, BOMB)) as server, _client(server.url) as client:
        client.open_slide("s1").associated_images["label"]


def attack_huge_tile_size() -> None:
    """``tileSize`` BOMB on a 2 BOMB square slide: get_thumbnail would read a BOMB x BOMB level."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    bomb = png_bomb(BOMB, BOMB)  # exactly the tile the info announces
    with SlideServer(info(2 * BOMB, 2 * BOMB, tile=BOMB), tile=lambda *_: (200, bomb)) as server, _client(server.url) as client:
        client.open_slide("s1").get_thumbnail((256, 256))


def attack_tiny_mpp() -> None:
    """``micronsPerPixel`` 0.0005: a 256x256 region at 0.5 um/px needs 16000x16000 pixels read."""
    with SlideServer(info(4096, 4096, mpp=0.0005)) as server, _client(server.url) as client:
        client.open_slide("s1").read_region_mpp((0, 0), 0.5, (256, 256))


def attack_huge_read_region() -> None:
    """A caller's 20000x20000 read_region (1.6 GB of RGBA): refused by the byte budget."""
    with SlideServer(info(40000, 40000)) as server, _client(server.url) as client:
        client.open_slide("s1").read_region((0, 0), 0, (20000, 20000))


def attack_iter_regions_giant() -> None:
    """``iter_regions`` over a 10^6 x 10^6 slide: the first region must come at once."""
    with SlideServer(info(1_000_000, 1_000_000)) as server, _client(server.url) as client:
        slide = client.open_slide("s1")
        with slide.iter_regions(0.25, (256, 256)) as regions:
            (x, y), image = next(iter(regions))
            assert (x, y) == (0, 0) and image.size == (256, 256)


def single_level_tiff(path: Path, side: int = 12000) -> Path:
    """A real single-level tiled TIFF of ``side`` x ``side`` white pixels (deflate: about 100 KB)."""
    import numpy as np
    import tifffile

    tile = np.full((256, 256, 3), 255, np.uint8)
    count = (-(-side // 256)) ** 2
    tifffile.imwrite(path, (tile for _ in range(count)), shape=(side, side, 3), dtype=np.uint8, tile=(256, 256),
                     compression="zlib", photometric="rgb")
    return path


def lying_tiff(path: Path, side: int = 100_000) -> Path:
    """A 512x512 tiled TIFF (6 KB) whose header declares ``side`` x ``side`` pixels: OpenSlide opens it."""
    import numpy as np
    import tifffile

    tifffile.imwrite(path, np.full((512, 512, 3), 255, np.uint8), tile=(256, 256), compression="zlib", photometric="rgb")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for name in ("ImageWidth", "ImageLength"):
            tag = tags[name]
            struct.pack_into("<I" if tag.dtype == 4 else "<H", data, tag.valueoffset, side if tag.dtype == 4 else min(side, 65535))
    path.write_bytes(bytes(data))
    return path


def _mock_tile(path: Path, slide_id: str) -> None:
    import urllib.error
    import urllib.request

    from sectra_mock import MockSectraServer

    with MockSectraServer(token=TOKEN, demo_slides=False) as mock:
        mock.add_slide_files(slide_id, [path])
        req = urllib.request.Request(f"{mock.url}/images/{slide_id}_files/0/0_0.jpg",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            urllib.request.urlopen(req, timeout=120).read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            if exc.code >= 500 or not body.startswith(b"{"):
                raise RuntimeError(f"the mock answered {exc.code} {body[:60]!r}") from None
        if not any(path.name in w for w in mock.warnings):
            raise RuntimeError("no warning names the file")


def attack_mock_lying_tiff() -> None:
    """The mock given a 6 KB TIFF declaring 100000x100000 pixels, asked for its 1x1 DZI tile."""
    with tempfile.TemporaryDirectory() as tmp:
        _mock_tile(lying_tiff(Path(tmp) / "liar.tiff"), "liar")


def attack_mock_single_level() -> None:
    """The mock given a single-level 12000x12000 TIFF, asked for its 1x1 DZI tile."""
    with tempfile.TemporaryDirectory() as tmp:
        _mock_tile(single_level_tiff(Path(tmp) / "giant.tiff"), "giant")


ATTACKS: dict[str, Callable[[], None]] = {
    name[len("attack_"):]: fn for name, fn in globals().items() if name.startswith("attack_") and callable(fn)
}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return -1.0


def main(names: list[str]) -> None:
    from sectra_core.errors import SectraError

    for name in names:
        start = time.perf_counter()
        try:
            ATTACKS[name]()
            error, typed, message = None, False, ""
        except BaseException as exc:  # noqa: BLE001 - the attack's outcome is what we report
            error, typed, message = type(exc).__name__, isinstance(exc, SectraError), str(exc)[:300]
        print(json.dumps({"attack": name, "error": error, "typed": typed, "message": message,
                          "seconds": round(time.perf_counter() - start, 2)}), flush=True)
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(ATTACKS))
