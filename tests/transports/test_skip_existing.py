"""``on_exists="skip"`` (``sectra download --skip-existing``) does not download a kept slide again
(#17 item 5), through both transports against the real mock."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sectra_core.io.files import Progress
from sectra_mock import MockSectraServer

SIZE = 40_000_000  # large enough that the whole body never fits in the first read


def test_an_existing_one_file_slide_is_not_read_again(make_client: Callable[..., Any], mock: MockSectraServer,
                                                       tmp_path: Path) -> None:
    mock.add_synthetic_slide("one", SIZE, n_files=1)
    client = make_client(mock)
    [path] = client.download_slide_files("one", tmp_path)
    before = path.stat().st_mtime_ns
    reports: list[Progress] = []
    assert client.download_slide_files("one", tmp_path, on_exists="skip", progress=reports.append) == [path]
    read = max((p.bytes_done for p in reports), default=0)
    # Before the fix: all 40 000 000 bytes were read again and thrown away. Now: none (the file is
    # named in the headers, and found kept before the body is read).
    assert read == 0 and not reports, read
    assert path.stat().st_mtime_ns == before and path.stat().st_size == SIZE
    # The dropped connection does not hurt the next call.
    assert client.get_image_metadata("one").id == "one"


def test_a_multipart_slide_keeps_existing_parts_and_writes_the_rest(make_client: Callable[..., Any],
                                                                    mock: MockSectraServer, tmp_path: Path) -> None:
    mock.add_synthetic_slide("many", 300_000, n_files=3)
    client = make_client(mock)
    paths = client.download_slide_files("many", tmp_path)
    paths[1].unlink()
    kept = paths[0].stat().st_mtime_ns
    assert client.download_slide_files("many", tmp_path, on_exists="skip") == paths
    assert paths[1].stat().st_size == 100_000 and paths[0].stat().st_mtime_ns == kept
