"""Real slides in the mock: demo slides, OpenSlide metadata, DZI tiles with real pixels, labels, 404s."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import urllib3
from openslide.deepzoom import DeepZoomGenerator
from PIL import Image

from sectra_client import SectraClient
from sectra_core import schemas as s
from sectra_core.errors import NotFoundError
from sectra_core.geometry import Pyramid
from sectra_mock import MockSectraServer
from sectra_mock.demo_slides import DEMO_SLIDES, ensure_demo_slides
from sectra_mock.slides import READ_AHEAD, SlideImage, TileCache, open_slide_files
from tests.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
http = urllib3.PoolManager()
ROOT = Path(__file__).resolve().parents[2]
#: Mean absolute difference per channel that JPEG re-encoding may add.
JPEG_NOISE = 6.0


def get(server: MockSectraServer, path: str, method: str = "GET", body: bytes | None = None) -> urllib3.BaseHTTPResponse:
    headers = {**AUTH, "Content-Type": "application/json"} if body is not None else AUTH
    return http.request(method, server.url + path, headers=headers, body=body)


def pixels(data: bytes) -> Any:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.fixture
def demo(make_mock: Callable[..., MockSectraServer]) -> MockSectraServer:
    """A mock as a new user gets it: demo slides, unknown slides 404."""
    return make_mock(invent_slides=False)


@pytest.mark.parametrize("slide_id", [d.slide_id for d in DEMO_SLIDES])
def test_tiles_are_openslides_deepzoom_tiles(demo: MockSectraServer, slide_id: str) -> None:
    """Tiles decode to the same pixels as DeepZoomGenerator.get_tile on the same file (spec §6)."""
    files = ensure_demo_slides()[slide_id]
    reference = DeepZoomGenerator(openslide.OpenSlide(str(files[0])), tile_size=240, overlap=0, limit_bounds=False)
    info = demo.image_info(slide_id)
    top = reference.level_count - 1
    assert (info.tile_size.width, reference.level_dimensions[top]) == (240, (info.image_size.width, info.image_size.height))
    with SectraClient(url=demo.url, token=TOKEN) as client:
        for level, col, row in [(top, 0, 0), (top, 3, 2), (top, *(n - 1 for n in reference.level_tiles[top])),
                                (top - 1, 1, 1), (top - 3, 0, 0), (0, 0, 0)]:
            expected = np.asarray(reference.get_tile(level, (col, row)).convert("RGB"), dtype=np.int16)
            jpg = client.get_tile(slide_id, level=level, col=col, row=row)
            got = pixels(jpg)
            assert got.shape == expected.shape, (level, col, row)
            # JPEG re-encoding noise only (quality 75 as DeepZoom's reference server, 4:2:0
            # chroma: 1 to 5 levels on these busy tiles); the PNG below must match exactly.
            assert np.abs(got - expected).mean() < JPEG_NOISE, (level, col, row)
            png = client.get_tile(slide_id, level=level, col=col, row=row, ext="png")
            assert np.array_equal(pixels(png), expected), (level, col, row)  # lossless: identical
        # Edge tiles: exactly the size the pyramid states (spec §6), where get_tile may be a pixel
        # short (issue 24: it keeps the aspect ratio when it scales); the same pixels where it is not.
        pyramid = Pyramid.from_image_info(info)
        short = 0
        for level in range(1, top + 1):
            cols, rows = reference.level_tiles[level]
            for col, row in {(cols - 1, r) for r in range(rows)} | {(c, rows - 1) for c in range(cols)}:
                got = pixels(client.get_tile(slide_id, level=level, col=col, row=row, ext="png"))
                expected = np.asarray(reference.get_tile(level, (col, row)).convert("RGB"), dtype=np.int16)
                assert (got.shape[1], got.shape[0]) == pyramid.tile_box(level, col, row)[2:], (level, col, row)
                if got.shape == expected.shape:
                    assert np.array_equal(got, expected), (level, col, row)
                else:
                    short += 1
                    assert max(abs(a - b) for a, b in zip(got.shape, expected.shape)) == 1, (level, col, row)
        assert short == {"slide-001": 2}.get(slide_id, 1)  # get_tile's short edge tiles on the demo slides


def test_tile_formats_and_content_types(demo: MockSectraServer) -> None:
    for ext, mime, magic in [("jpg", "image/jpeg", b"\xff\xd8"), ("jpeg", "image/jpeg", b"\xff\xd8"), ("png", "image/png", b"\x89PNG")]:
        r = get(demo, f"/images/slide-001_files/12/1_1.{ext}")
        assert r.status == 200 and r.headers["Content-Type"] == mime and r.data.startswith(magic)
        r = get(demo, f"/images/slide-001_files/12/1_1_0.{ext}")  # focal plane 0
        assert r.status == 200 and r.headers["Content-Type"] == mime
    for path in ["/images/slide-001_files/12/1_1.gif", "/images/slide-001_files/12/1_1_7.jpg",
                 "/images/slide-001_files/13/0_0.jpg", "/images/slide-001_files/12/10_0.jpg",
                 "/images/slide-001_files/12/0_0.jpg?opticalPath=5"]:
        assert get(demo, path).status == 404, path


def test_repeated_tiles_come_from_the_cache(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(tile_cache_bytes=1 << 20)
    first = get(server, "/images/slide-003_files/11/2_1.jpg").data
    misses, hits = server.tile_cache.misses, server.tile_cache.hits
    assert get(server, "/images/slide-003_files/11/2_1.jpeg").data == first  # same bytes, jpg == jpeg
    assert (server.tile_cache.misses, server.tile_cache.hits) == (misses, hits + 1)
    for col in range(9):  # more than a 1 MiB budget would hold as PNG: the cache stays within it
        get(server, f"/images/slide-003_files/11/{col}_0.png")
    assert 0 < server.tile_cache.bytes <= 1 << 20
    off = make_mock(tile_cache_bytes=0)
    get(off, "/images/slide-003_files/11/2_1.jpg")
    assert len(off.tile_cache) == 0


def test_cold_tiles_read_ahead_and_render_once(make_mock: Callable[..., MockSectraServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold tile starts rendering the next ones in raster order; a tile asked for while it renders
    (read-ahead or another request) is rendered once, not once per request."""
    renders: list[tuple[int, int, int, str]] = []
    original = SlideImage.render_tile

    def slow_render(self: SlideImage, level: int, col: int, row: int, fmt: str) -> bytes:
        renders.append((level, col, row, fmt))
        time.sleep(0.2)  # long enough that the requests below overlap a render in flight
        return original(self, level, col, row, fmt)

    monkeypatch.setattr(SlideImage, "render_tile", slow_render)
    server = make_mock(invent_slides=False)
    cols = server.state.slide("slide-001").image.level_grid(12)[0]  # type: ignore[union-attr]
    first = get(server, "/images/slide-001_files/12/0_0.jpg")
    assert first.status == 200
    # The next READ_AHEAD tiles of the row are being rendered (or done) without being asked for.
    ahead = [(12, c, 0, "jpg") for c in range(1, READ_AHEAD + 1)]
    assert READ_AHEAD < cols
    deadline = time.monotonic() + 30
    while len(renders) < 1 + READ_AHEAD:
        assert time.monotonic() < deadline, renders
        time.sleep(0.02)
    assert renders[0] == (12, 0, 0, "jpg") and sorted(renders[1:]) == ahead
    with ThreadPoolExecutor(8) as pool:  # 8 clients at once on 2 tiles: the read-ahead one, a cold one
        paths = [f"/images/slide-001_files/12/{c}_0.jpg" for c in (1, 1, 1, 1, 7, 7, 7, 7)]
        answers = list(pool.map(lambda path: get(server, path), paths))
    assert all(a.status == 200 for a in answers)
    assert len({a.data for a in answers[:4]}) == 1 and len({a.data for a in answers[4:]}) == 1
    assert renders.count((12, 1, 0, "jpg")) == 1 and renders.count((12, 7, 0, "jpg")) == 1
    # Row ends wrap to the next row; the level's last tile stops the read-ahead.
    rows = server.state.slide("slide-001").image.level_grid(12)[1]  # type: ignore[union-attr]
    get(server, f"/images/slide-001_files/12/{cols - 1}_{rows - 1}.png")
    time.sleep(0.5)  # what a read-ahead would have started by now
    assert [k for k in renders if k[3] == "png"] == [(12, cols - 1, rows - 1, "png")]
    get(server, f"/images/slide-001_files/12/{cols - 1}_0.png")  # a row's last tile: the next row's first
    deadline = time.monotonic() + 30
    while len([k for k in renders if k[3] == "png"]) < 2 + READ_AHEAD:
        assert time.monotonic() < deadline, renders
        time.sleep(0.02)
    assert sorted(k for k in renders if k[3] == "png")[:READ_AHEAD] == [(12, c, 1, "png") for c in range(READ_AHEAD)]


def test_read_ahead_stays_off_with_the_cache_off(make_mock: Callable[..., MockSectraServer], monkeypatch: pytest.MonkeyPatch) -> None:
    renders: list[tuple[int, int, int]] = []
    original = SlideImage.render_tile

    def counted(self: SlideImage, level: int, col: int, row: int, fmt: str) -> bytes:
        renders.append((level, col, row))
        return original(self, level, col, row, fmt)

    monkeypatch.setattr(SlideImage, "render_tile", counted)
    server = make_mock(invent_slides=False, tile_cache_bytes=0)  # nowhere to keep a tile read ahead
    assert get(server, "/images/slide-001_files/12/0_0.jpg").status == 200
    time.sleep(0.3)  # what a read-ahead would have rendered by now
    assert renders == [(12, 0, 0)]


def test_transparent_regions_are_composited_like_deepzoom() -> None:
    """The opaque fast path and the composite path both give DeepZoom's pixels exactly."""
    image = open_slide_files(ensure_demo_slides()["slide-001"])
    assert image is not None
    real_read = image._slide.read_region

    def partly_transparent(location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        region = np.array(real_read(location, level, size))
        region[:, : size[0] // 3, 3] = 0  # outside a scanned area: transparent
        region[: size[1] // 4, :, 3] = 128  # and a half-transparent band
        return Image.fromarray(region, "RGBA")

    for patched in (False, True):
        if patched:  # DeepZoomGenerator reads through the same handle attribute
            image._slide.read_region = partly_transparent  # type: ignore[method-assign]
        for level, col, row in [(12, 0, 0), (12, 9, 7), (11, 2, 1), (9, 0, 0), (0, 0, 0)]:
            ours = np.asarray(image._deepzoom_tile(level, col, row))
            theirs = np.asarray(image._dz.get_tile(level, (col, row)))
            assert ours.shape == theirs.shape and np.array_equal(ours, theirs), (patched, level, col, row)


def test_metadata_comes_from_the_file(demo: MockSectraServer) -> None:
    by_id = {d.slide_id: d for d in DEMO_SLIDES}
    for slide_id, mime in [("slide-001", "image/tiff"), ("slide-002", "image/tiff"), ("slide-003", "application/dicom")]:
        info = json.loads(get(demo, f"/slides/{slide_id}/info").data)
        d = by_id[slide_id]
        assert info["imageSize"] == {"width": d.width, "height": d.height}
        assert info["micronsPerPixel"] == pytest.approx(d.mpp)
        assert info["fileFormat"] == {"mimeType": mime}
        assert info["storedTileFormat"] == {"mimeType": "image/jpeg", "extension": "jpg"}
        assert {"mimeType": "image/jpeg", "extension": "jpg"} in info["availableTileFormats"]
        assert info["focalPlanes"] == [{"id": "0", "offsetUm": 0.0}]
    [case] = {json.loads(get(demo, f"/slides/{i}/info?includePHI=true").data)["accessionNumber"] for i in by_id}
    listed = json.loads(get(demo, f"/requests/{case}/images/info").data)
    assert [x["id"] for x in listed] == ["slide-001", "slide-002", "slide-003"]


def test_focal_planes_and_optical_paths_from_the_file(make_mock: Callable[..., MockSectraServer], tmp_path: Path) -> None:
    """DICOM: the optical path its metadata declares (OpenSlide 4's dicom.* properties); a second
    declared path is a warning (OpenSlide reads one set of pixels); a Z-stack OpenSlide refuses."""
    import pydicom

    server = make_mock(invent_slides=False)
    assert server.image_info("slide-003").optical_paths == [s.OpticalPath(id="1", description="Brightfield illumination")]
    assert server.image_info("slide-001").optical_paths == [s.OpticalPath(id="0", description="Brightfield")]
    assert get(server, "/images/slide-003_files/10/0_0.jpg?opticalPath=1").status == 200
    assert get(server, "/images/slide-003_files/10/0_0.jpg?opticalPath=2").status == 404

    def variant(name: str, edit: Callable[[Any], None]) -> list[Path]:
        folder = tmp_path / name
        shutil.copytree(ensure_demo_slides()["slide-003"][0].parent, folder)
        for part in sorted(folder.iterdir()):
            ds = pydicom.dcmread(part)
            if "VOLUME" in ds.ImageType:
                edit(ds)
                ds.save_as(part)
        return sorted(folder.iterdir())

    def two_paths(ds: Any) -> None:
        second = copy.deepcopy(ds.OpticalPathSequence[0])
        second.OpticalPathIdentifier, second.OpticalPathDescription = "2", "DAPI"
        ds.OpticalPathSequence[0].OpticalPathDescription = "RGB"
        ds.OpticalPathSequence.append(second)
        ds.NumberOfOpticalPaths = 2

    info = server.add_slide_files("two-paths", variant("two-paths", two_paths))
    assert info.optical_paths == [s.OpticalPath(id="1", description="RGB")]
    assert info.focal_planes == [s.FocalPlane(id="0", offset_um=0.0)]
    assert any("two-paths" in w and "declares 2 optical paths" in w and "'1' (RGB)" in w for w in server.warnings)

    def z_stack(ds: Any) -> None:
        ds.TotalPixelMatrixFocalPlanes = 3

    info = server.add_slide_files("z-stack", variant("z-stack", z_stack))
    assert info.station_name == "SYNTHETIC"  # OpenSlide 4 refuses focal planes != 1: served as files
    assert any("z-stack" in w and "not a slide OpenSlide can read" in w for w in server.warnings)


def test_labels_are_the_files_label_images(demo: MockSectraServer) -> None:
    files = ensure_demo_slides()
    for slide_id in ("slide-001", "slide-003"):
        r = get(demo, f"/slides/{slide_id}/label")
        assert r.status == 200 and r.headers["Content-Type"] == "image/png"
        label = openslide.OpenSlide(str(files[slide_id][0])).associated_images["label"]
        assert np.array_equal(pixels(r.data), np.asarray(label.convert("RGB"), dtype=np.int16))
    assert get(demo, "/slides/slide-002/label").status == 204  # the file has no label


def test_unknown_slides_are_404_on_every_route(demo: MockSectraServer, tmp_path: Path) -> None:
    routes = [("GET", "/slides/slide-01/info"), ("GET", "/slides/slide-01/label"), ("GET", "/slides/slide-01/files"),
              ("GET", "/slides/slide-01/request/images/info"), ("GET", "/images/slide-01_files/0/0_0.jpg"),
              ("GET", "/images/slide-01_files/0/0_0_0.jpg"), ("GET", "/applications/a/results/slide/slide-01"),
              ("GET", "/slides/slide-01/info/")]
    for method, path in routes:
        r = get(demo, path, method)
        assert r.status == 404 and "slide-01" in json.loads(r.data)["error"], path
    qc = b'{"applicationVersion": "1", "qualityControl": {"status": "QualityOk", "versionId": ""}}'
    assert get(demo, "/slides/slide-01/qualityControl", "PUT", qc).status == 404
    assert get(demo, "/applications/a/results", "POST", b'{"slideId": "slide-01"}').status == 404
    with SectraClient(url=demo.url, token=TOKEN) as client, pytest.raises(NotFoundError):
        client.download_slide_files("slide-01", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing invented, nothing saved
    assert not demo.state.has_slide("slide-01")


def test_multi_file_dicom_slide_downloads_all_parts(demo: MockSectraServer, tmp_path: Path) -> None:
    files = ensure_demo_slides()["slide-003"]
    with SectraClient(url=demo.url, token=TOKEN) as client:
        got = client.download_slide_files("slide-003", tmp_path)
    assert [p.name for p in got] == [f.name for f in files] and len(files) == 4  # 3 levels + label
    assert all(p.read_bytes() == f.read_bytes() for p, f in zip(got, files))
    assert openslide.OpenSlide.detect_format(str(got[0])) == "dicom"  # the download opens as a slide


def test_files_that_are_not_slides_get_synthetic_metadata(make_mock: Callable[..., MockSectraServer], tmp_path: Path) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("not a slide")
    server = make_mock(invent_slides=False)
    info = server.add_slide_files("notes", [note])
    assert info.station_name == "SYNTHETIC" and "notes.txt" in (info.specimen.description or "")  # type: ignore[union-attr]
    assert any("notes.txt" in w and "not a slide" in w for w in server.warnings)
    r = get(server, "/images/notes_files/0/0_0.jpg")
    assert r.status == 200 and r.headers["Content-Type"] == "image/jpeg"  # one colour, but the format asked for
    assert get(server, "/slides/notes/files").data == b"not a slide"
    # A real slide file under another id: metadata from the file, not invented.
    svs = ensure_demo_slides()["slide-002"]
    real = server.add_slide_files("mine", svs)
    assert (real.image_size.width, real.image_size.height, real.station_name) == (1536, 2048, "SCANNER1")


def test_demo_slides_are_deterministic_and_written_atomically(tmp_path: Path) -> None:
    # Two processes racing to fill one empty cache folder, and a third folder: identical bytes.
    code = "import sys; from pathlib import Path; from sectra_mock.demo_slides import ensure_demo_slides; ensure_demo_slides(Path(sys.argv[1]))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "a")], env=env) for _ in range(2)]
    assert [p.wait(120) for p in procs] == [0, 0]
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path / "b")], env=env, timeout=120).returncode == 0
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names and all(not n.name.startswith(".") and not n.name.endswith(".part") for n in names)
    assert sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file()) == names
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    assert sum((tmp_path / "a" / n).stat().st_size for n in names) < 5 * 2**20  # small


def test_slides_dir_of_real_slides_in_the_cli(tmp_path: Path) -> None:
    from sectra_client.cli import _load_slides_dir

    files = ensure_demo_slides()
    shutil.copytree(files["slide-003"][0].parent, tmp_path / "case-dicom")
    shutil.copy(files["slide-001"][0], tmp_path / "scan.svs")
    (tmp_path / "readme.txt").write_text("hello")
    server = MockSectraServer(token=TOKEN)
    out = io.StringIO()
    _load_slides_dir(server, str(tmp_path), out)
    text = out.getvalue()
    assert "case-dicom: 4 file(s), application/dicom 2000x1500 px, 0.25 um/px" in text
    assert "scan: 1 file(s), image/tiff 2400x1800 px" in text
    assert "readme: 1 file(s), not a slide OpenSlide reads: SYNTHETIC" in text
    assert server.image_info("case-dicom").file_format.mime_type == "application/dicom"  # type: ignore[union-attr]


def test_tiles_real_benchmark_runs_in_quick_mode() -> None:
    """bench/tiles_real.py --quick: the three processes start, warm up, run a round and print the
    ratios (a smoke run: it proves the script works, not how fast anything is)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "tiles_real.py"), "--quick"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "24 tiles of slide-001.svs" in done.stdout
    assert "x the floor's (target <= 1.5x)" in done.stdout and "x the floor's (target >= 0.5x)" in done.stdout


async def test_read_ahead_into_a_closed_nursery_leaves_nothing_pending() -> None:
    """A server stopping (its nursery closed) serves the tile asked for, reads nothing ahead, and
    leaves no tile marked "in flight" that a later request would wait on for ever."""
    import trio

    image = open_slide_files(ensure_demo_slides()["slide-001"])
    assert image is not None
    async with trio.open_nursery() as closed:
        pass
    cache, limiter = TileCache(64 * 2**20), trio.CapacityLimiter(4)
    data = await image.tile(cache, "s", 12, 0, 0, "jpg", limiter=limiter, nursery=closed)
    assert data.startswith(b"\xff\xd8") and len(cache) == 1 and not image._pending
    with trio.fail_after(60):  # the next tile is rendered on request, not waited for
        async with trio.open_nursery() as live:
            assert (await image.tile(cache, "s", 12, 1, 0, "jpg", limiter=limiter, nursery=live)).startswith(b"\xff\xd8")
    assert len(cache) == 2 + READ_AHEAD  # the live nursery read ahead, and finished before it closed
