"""Issue 27: slide files the mock cannot serve within its memory budget, and ``--slides-dir``
links that lead out of the folder. Real files on disk, a real mock on loopback."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import urllib3

from sectra_client.cli._embedded_mock import load_slides_dir, slides_from_dir
from sectra_mock import MockSectraServer
from sectra_mock.demo_slides import ensure_demo_slides
from sectra_mock.slides import MAX_TILE_READ_BYTES, SlideTooLargeError, open_slide_files
from tests.conftest import TOKEN
from tests.transports.hostile_pixels import lying_tiff, single_level_tiff

http = urllib3.PoolManager()


def test_a_single_level_giant_is_refused_with_a_warning_and_answers_json(
    tmp_path: Path, make_mock: Callable[..., MockSectraServer],
) -> None:
    """Before: each low-resolution tile of a 12000x12000 single-level TIFF read 549 MiB (1.2 GB
    peak, 10 s, 2-core loaded); 100000x100000 ended in a MemoryError answered as HTML."""
    path = single_level_tiff(tmp_path / "giant.tiff", side=6000)  # 137 MiB a low tile: over 64 MiB
    with pytest.raises(SlideTooLargeError, match=r"giant.tiff: a tile of DZI level 0 would read 6000x6000 pixels"):
        open_slide_files([path])
    mock = make_mock(invent_slides=False)
    info = mock.add_slide_files("giant", [path])
    assert info.station_name == "SYNTHETIC"
    warning = next(w for w in mock.warnings if "giant.tiff" in w)
    assert "refused as a slide" in warning and "MAX_TILE_READ_BYTES" in warning and "--pyramid" in warning
    assert str(tmp_path) not in warning  # the file's name, never its folder
    answer = http.request("GET", f"{mock.url}/images/giant_files/0/0_0.jpg", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("image/")


def test_a_file_lying_about_its_size_is_refused(tmp_path: Path, make_mock: Callable[..., MockSectraServer]) -> None:
    """Before: a 6 KB TIFF declaring 100000x100000 pixels opened, and its low tiles were a 500
    (MemoryError while cutting them; with more memory, gigabytes a tile)."""
    path = lying_tiff(tmp_path / "liar.tiff")
    assert path.stat().st_size < 20_000
    mock = make_mock(invent_slides=False)
    assert mock.add_slide_files("liar", [path]).station_name == "SYNTHETIC"
    assert any("liar.tiff: a tile of DZI level 0 would read 100000x100000 pixels" in w for w in mock.warnings)
    answer = http.request("GET", f"{mock.url}/images/liar_files/3/0_0.png", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 200 and answer.headers["Content-Type"] == "image/png"


def test_a_pyramid_within_the_budget_is_still_a_slide() -> None:
    path = ensure_demo_slides()["slide-001"][0]
    image = open_slide_files([path])
    assert image is not None and MAX_TILE_READ_BYTES == 64 * 1024 * 1024
    image.close()


def test_slides_dir_serves_nothing_outside_the_folder(tmp_path: Path, make_mock: Callable[..., MockSectraServer]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.svs").write_bytes(b"secret" * 100)
    (outside / "part.dcm").write_bytes(b"dcm" * 100)
    folder = tmp_path / "slides"
    folder.mkdir()
    (folder / "own.svs").write_bytes(b"own" * 100)
    (folder / "escape.svs").symlink_to(outside / "secret.svs")
    (folder / "escaped-dir").symlink_to(outside, target_is_directory=True)
    (folder / "dangling.svs").symlink_to(tmp_path / "nowhere.svs")
    (folder / "mixed").mkdir()
    (folder / "mixed" / "a.dcm").write_bytes(b"a" * 100)
    (folder / "mixed" / "b.dcm").symlink_to(outside / "part.dcm")
    (folder / "alias.svs").symlink_to(folder / "own.svs")  # inside: served, as the file it names

    refused: list[str] = []
    slides = slides_from_dir(folder, refused)
    assert {k: [p.name for p in v] for k, v in slides.items()} == {
        "alias": ["own.svs"], "mixed": ["a.dcm"], "own": ["own.svs"]}
    assert all(p.resolve() == p and folder.resolve() in p.parents for v in slides.values() for p in v)
    assert sorted(line.split(" ")[0] for line in refused) == [
        "dangling.svs", "escape.svs", "escaped-dir", str(Path("mixed") / "b.dcm")]
    assert all("outside slides/" in line for line in refused)

    mock = make_mock(invent_slides=False)
    out = io.StringIO()
    load_slides_dir(mock, str(folder), out)
    assert out.getvalue().count("warning: --slides-dir:") == 4
    assert not mock.state.has_slide("escape") and not mock.state.has_slide("escaped-dir")
    answer = http.request("GET", f"{mock.url}/slides/escape/files", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status == 404


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_a_folder_that_is_itself_a_link_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "one.svs").write_bytes(b"x" * 10)
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    refused: list[str] = []
    assert list(slides_from_dir(link, refused)) == ["one"] and refused == []
