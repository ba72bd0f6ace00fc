"""Safe filenames and atomic, all-or-nothing writing of downloaded files."""

from __future__ import annotations

from pathlib import Path

import pytest

from sectra_core.errors import DuplicateFilenameError, LocalFileError, MultipartError, UnsafeFilenameError
from sectra_core.io.files import Download, Progress, case_folders, safe_filename

MULTI = {"content-type": "multipart/related; boundary=XX"}


def multipart(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for name, data in parts:
        out += f'--XX\r\nContent-Disposition: attachment; filename="{name}"\r\n\r\n'.encode() + data + b"\r\n"
    return out + b"--XX--\r\n"


@pytest.mark.parametrize("name, expected", [
    ("i0000,0000b.dcm", "i0000,0000b.dcm"),
    ("sub/dir/file.svs", "file.svs"),
    ("sub\\file.svs", "file.svs"),
    ("résumé.tiff", "résumé.tiff"),
    (".hidden", ".hidden"),
    ("re\u0301sume\u0301.tiff", "r\u00e9sum\u00e9.tiff"),  # NFC, one spelling on every disk
    ("CONSOLE.svs", "CONSOLE.svs"), ("COM10.dcm", "COM10.dcm"), ("slide.con", "slide.con"), (" lead", " lead"),
])
def test_safe_names(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


@pytest.mark.parametrize("name", [
    "", ".", "..", "../evil", "..\\..\\evil.svs", "a/../../b", "/etc/passwd", "\\\\server\\share\\x",
    "C:\\Windows\\x.dll", "c:evil", "bad\x00name", "tab\tname", "new\nline", "dir/", "a" * 300, None,
    # names Windows cannot hold, refused on every OS so that a download stays portable
    "CON", "con.txt", "Aux.tar.gz", "NUL .txt", "COM1", "com\u00b9.dcm", "LPT9.log", "CONIN$", "a:b", "slide.svs:zone",
    "slide.", "slide ", "a<b", "a>b", 'a"b', "a|b", "a?b", "a*b",
])
def test_unsafe_names_are_refused(name: str | None) -> None:
    with pytest.raises(UnsafeFilenameError):
        safe_filename(name)


def run(download: Download, chunks: list[bytes]) -> list[Path]:
    try:
        for c in chunks:
            download.feed(c)
        return download.finish()
    except BaseException as exc:
        raise download.fail(exc)


def test_files_land_complete_with_progress(tmp_path: Path) -> None:
    seen: list[Progress] = []
    raw = multipart(("a.bin", b"A" * 1000), ("b.bin", b"B" * 10))
    paths = run(Download(MULTI | {"content-length": str(len(raw))}, tmp_path, progress=seen.append),
                [raw[i : i + 100] for i in range(0, len(raw), 100)])
    assert [p.name for p in paths] == ["a.bin", "b.bin"]
    assert (tmp_path / "a.bin").read_bytes() == b"A" * 1000
    assert seen[-1].bytes_done == seen[-1].bytes_total == len(raw) and seen[-1].filename == "b.bin"
    assert max(p.file_bytes for p in seen if p.filename == "a.bin") == 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os
    import stat

    umask = os.umask(0o022)
    try:
        paths = run(Download(MULTI, tmp_path), [multipart(("a.bin", b"A"))])
        os.umask(0o077)
        paths += run(Download(MULTI, tmp_path / "private"), [multipart(("b.bin", b"B"))])
    finally:
        os.umask(umask)
    # As any new file, not 0o600 as tempfile's: other readers of the folder can read the slide.
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [0o644, 0o600]


def test_truncated_download_leaves_no_partial_file(tmp_path: Path) -> None:
    raw = multipart(("a.bin", b"A" * 100), ("b.bin", b"B" * 5000))
    with pytest.raises(MultipartError, match="b.bin"):
        run(Download(MULTI, tmp_path), [raw[:3000]])
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # the complete one stays, nothing else


def test_hostile_name_stops_before_writing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UnsafeFilenameError):
        run(Download(MULTI, out), [multipart(("../escape.bin", b"x"))])
    assert list(out.iterdir()) == [] and not (tmp_path / "escape.bin").exists()


def test_duplicate_names_and_existing_files(tmp_path: Path) -> None:
    with pytest.raises(DuplicateFilenameError, match="twice") as twice:
        run(Download(MULTI, tmp_path / "d"), [multipart(("a", b"1"), ("a", b"2"))])
    assert twice.value.existing is None
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["a"]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "a").write_bytes(b"old")
    with pytest.raises(DuplicateFilenameError, match="already exists") as exists:
        run(Download(MULTI, tmp_path / "e"), [multipart(("a", b"new"))])
    assert exists.value.existing == tmp_path / "e" / "a"
    assert (tmp_path / "e" / "a").read_bytes() == b"old"
    run(Download(MULTI, tmp_path / "e", on_exists="skip"), [multipart(("a", b"new"), ("b", b"bb"))])
    assert (tmp_path / "e" / "a").read_bytes() == b"old" and (tmp_path / "e" / "b").read_bytes() == b"bb"
    run(Download(MULTI, tmp_path / "e", on_exists="overwrite"), [multipart(("a", b"new"), ("b", b"b2"))])
    assert (tmp_path / "e" / "a").read_bytes() == b"new"
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["a", "b"]


def test_an_os_error_of_the_progress_callback_is_not_a_disk_error(tmp_path: Path) -> None:
    def report(progress: Progress) -> None:
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a progress bar writing to a closed pipe

    with pytest.raises(BrokenPipeError) as caught:
        run(Download(MULTI, tmp_path, progress=report), [multipart(("a.bin", b"A"))])
    assert not isinstance(caught.value, LocalFileError) and list(tmp_path.iterdir()) == []


def test_case_folders_differ_up_to_case() -> None:
    assert case_folders("out", ["a", "b"]) == {"a": Path("out/a"), "b": Path("out/b")}
    with pytest.raises(DuplicateFilenameError, match="'A'"):
        case_folders("out", ["a", "A"])


def test_single_file_uses_fallback_name(tmp_path: Path) -> None:
    paths = run(Download({"content-type": "application/octet-stream"}, tmp_path, fallback_name="slide-1"), [b"xyz"])
    assert paths == [tmp_path / "slide-1"] and paths[0].read_bytes() == b"xyz"
