"""Hostile or unlucky /files answers and local disks, on both clients (issue #12, holes 7, 9, 10).

A raw loopback server sends what a broken server or a proxy would (an HTML page with status 200,
names that collide on other disks); the real mock serves slides to a child process whose disk
refuses to take them (a file-size limit, a folder it may not write). Each test checks what is
left on disk: nothing half-written, nothing saved that is no slide file.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sectra_core.errors import (
    DuplicateFilenameError,
    LocalFileError,
    NotSlideFileError,
    UnsafeFilenameError,
)
from sectra_core.retry import NO_RETRY
from sectra_mock import MockSectraServer
from tests.conftest import TOKEN, RawServer
from tests.core.test_files import MULTI, multipart
from tests.transports.conftest import PortalClient

MakeClient = Callable[..., Any]
FILES = "/slides/s/files"
ROOT = Path(__file__).resolve().parents[2]
PAGE = b"<html><body><h1>Session expired</h1><form action=/login>...</form></body></html>"


def listing(folder: Path) -> dict[str, bytes]:
    """Every entry of ``folder`` (hidden ``.part`` files included) with its bytes."""
    return {p.name: p.read_bytes() if p.is_file() else b"<dir>" for p in folder.iterdir()} if folder.exists() else {}


def stream_all(client: Any, slide_id: str = "s") -> list[object]:
    """Every event of ``stream_slide_files`` (an async context on trio, run through the portal)."""
    if isinstance(client, PortalClient):
        async def events() -> list[object]:
            async with client._client.stream_slide_files(slide_id) as files:
                return [event async for event in files]
        return list(client._portal.run(events))
    with client.stream_slide_files(slide_id) as files:
        return list(files)


# --- hole 7: a page sent with status 200 is no slide -------------------------------------------


@pytest.mark.parametrize("content_type", [
    "text/html; charset=utf-8", "application/json", "text/plain", "application/problem+json", None,
])
def test_an_error_page_with_status_200_is_not_saved(content_type: str | None, make_client: MakeClient,
                                                    raw_server: RawServer, tmp_path: Path) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    raw_server.route(FILES, 200, headers, PAGE)
    client = make_client(raw_server, retry=NO_RETRY)
    out = tmp_path / "out"
    with pytest.raises(NotSlideFileError, match="Content-Type" if content_type else "no Content-Type"):
        client.download_slide_files("s", out)
    assert listing(out) == {}  # not even the folder was made
    with pytest.raises(NotSlideFileError):
        stream_all(client)


@pytest.mark.parametrize("content_type", ["application/octet-stream", "application/dicom", "image/tiff"])
def test_single_slide_file_types_are_saved(content_type: str, make_client: MakeClient, raw_server: RawServer,
                                           tmp_path: Path) -> None:
    raw_server.route(FILES, 200, {"Content-Type": content_type,
                                  "Content-Disposition": 'attachment; filename="s.tiff"'}, b"II*\x00slide")
    assert make_client(raw_server, retry=NO_RETRY).download_slide_files("s", tmp_path) == [tmp_path / "s.tiff"]
    assert listing(tmp_path) == {"s.tiff": b"II*\x00slide"}


# --- hole 9: local failures are typed, name the file, leave nothing --------------------------------

CHILD = """
import json, os, resource, sys
url, token, out, transport, limit, uid = sys.argv[1:7]
if int(limit):
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
# Everything imported first: the interpreter's own files need not be readable by the user below.
import encodings.idna, encodings.ascii, encodings.latin_1, secrets, ssl, trio, unicodedata, sectra_core.io.files, sectra_core.multipart, sectra_core.io.streaming
from sectra_client import SectraClient
from sectra_transports.trio import AsyncSectraClient
from sectra_core.retry import NO_RETRY
if int(uid) >= 0:
    os.setgid(int(uid)); os.setuid(int(uid))
try:
    if transport == "urllib3":
        with SectraClient(url, token, retry=NO_RETRY) as client:
            client.download_slide_files("big", out)
    else:
        async def main():
            async with AsyncSectraClient(url, token, retry=NO_RETRY) as client:
                await client.download_slide_files("big", out)
        trio.run(main)
    print(json.dumps({"raised": None}))
except BaseException as exc:
    print(json.dumps({"raised": [k.__name__ for k in type(exc).__mro__], "errno": getattr(exc, "errno", None),
                      "message": str(exc)}))
"""


def download_in_child(mock: MockSectraServer, out: Path, transport: str, *, fsize_limit: int = 0,
                      uid: int = -1) -> dict[str, Any]:
    """Download slide ``big`` in a child process (its own limits and user); what it raised."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mock.url, TOKEN, str(out), transport, str(fsize_limit), str(uid)],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_file_size_limit_is_a_local_file_error(mock: MockSectraServer, transport_name: str,
                                                 tmp_path: Path) -> None:
    # RLIMIT_FSIZE (ulimit -f) fails writes past 500 kB with EFBIG, as a full disk fails with ENOSPC.
    mock.add_synthetic_slide("big", 3_000_000, n_files=3)
    out = tmp_path / "out"
    result = download_in_child(mock, out, transport_name, fsize_limit=500_000)
    assert result["raised"][:3] == ["LocalFileError", "DownloadError", "SectraError"] and "OSError" in result["raised"]
    assert result["errno"] == errno.EFBIG
    assert "'i0000,0000b.dcm'" in result["message"] and str(out) in result["message"]
    assert "ulimit" in result["message"]
    assert listing(out) == {}  # the partial file is gone


def test_a_folder_it_may_not_write_is_a_local_file_error(mock: MockSectraServer, transport_name: str,
                                                         tmp_path: Path) -> None:
    mock.add_synthetic_slide("big", 30_000, n_files=3)
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"sectra-ro-{os.getpid()}-{transport_name}"
    out = base / "out"
    out.mkdir(parents=True)
    try:
        base.chmod(0o755)
        out.chmod(0o555)  # read-only for everyone but root: the child runs as nobody when we are root
        result = download_in_child(mock, out, transport_name, uid=65534 if os.geteuid() == 0 else -1)
        assert result["raised"][0] == "LocalFileError" and result["errno"] == errno.EACCES
        assert "'i0000,0000b.dcm'" in result["message"] and "permission" in result["message"]
        assert listing(out) == {}
    finally:
        out.chmod(0o755)
        out.rmdir()
        base.rmdir()


def test_things_in_the_way_are_local_file_errors(mock: MockSectraServer, make_client: MakeClient,
                                                 tmp_path: Path) -> None:
    mock.add_synthetic_slide("big", 30_000, n_files=3)
    client = make_client(mock, retry=NO_RETRY)
    out = tmp_path / "out"
    (out / "i0001,0000b.dcm").mkdir(parents=True)  # a directory where the second file goes
    with pytest.raises(LocalFileError, match=r"'i0001,0000b.dcm' in .*out.*directory") as caught:
        client.download_slide_files("big", out, on_exists="overwrite")
    assert caught.value.errno == errno.EISDIR and isinstance(caught.value, OSError)
    assert sorted(listing(out)) == ["i0000,0000b.dcm", "i0001,0000b.dcm"]  # no .part file left
    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(LocalFileError, match="folder .*plain") as caught:  # the folder is a file
        client.download_slide_files("big", tmp_path / "plain")
    assert caught.value.errno == errno.EEXIST
    with pytest.raises(LocalFileError, match="folder .*plain/sub") as caught:  # a file on the way to it
        client.download_slide_files("big", tmp_path / "plain" / "sub")
    assert caught.value.errno == errno.ENOTDIR


@pytest.mark.parametrize("name", ["中" * 81, "中" * 85, "😀" * 62 + ".svs", "a" * 251 + ".dcm"])
def test_names_up_to_255_bytes_can_be_saved(name: str, make_client: MakeClient, raw_server: RawServer,
                                            tmp_path: Path) -> None:
    assert 243 <= len(name.encode()) <= 255
    raw_server.route(FILES, 200, MULTI, multipart((name, b"slide bytes")))
    assert make_client(raw_server, retry=NO_RETRY).download_slide_files("s", tmp_path) == [tmp_path / name]
    assert listing(tmp_path) == {name: b"slide bytes"}


def test_a_name_over_255_bytes_is_refused_before_writing(make_client: MakeClient, raw_server: RawServer,
                                                         tmp_path: Path) -> None:
    raw_server.route(FILES, 200, MULTI, multipart(("中" * 85 + "x", b"slide bytes")))
    with pytest.raises(UnsafeFilenameError, match="256 bytes.*255"):
        make_client(raw_server, retry=NO_RETRY).download_slide_files("s", tmp_path / "out")
    assert listing(tmp_path / "out") == {}


# --- hole 10: names that would collide or break on another disk -----------------------------------

NFD, NFC = "re\u0301sume\u0301.tiff", "r\u00e9sum\u00e9.tiff"


@pytest.mark.parametrize("first, second", [("Slide.svs", "slide.svs"), (NFC, NFD), ("STRASSE.dcm", "straße.dcm")])
def test_names_equal_up_to_case_or_normalisation_are_duplicates(first: str, second: str, make_client: MakeClient,
                                                                raw_server: RawServer, tmp_path: Path) -> None:
    raw_server.route(FILES, 200, MULTI, multipart((first, b"one"), (second, b"two")))
    client = make_client(raw_server, retry=NO_RETRY)
    with pytest.raises(DuplicateFilenameError):
        client.download_slide_files("s", tmp_path)
    assert listing(tmp_path) == {first: b"one"}  # NFC already: the complete first file only
    with pytest.raises(DuplicateFilenameError):
        stream_all(client)


def test_a_decomposed_name_is_saved_composed(make_client: MakeClient, raw_server: RawServer, tmp_path: Path) -> None:
    raw_server.route(FILES, 200, MULTI, multipart((NFD, b"one")))
    assert make_client(raw_server, retry=NO_RETRY).download_slide_files("s", tmp_path) == [tmp_path / NFC]
    assert listing(tmp_path) == {NFC: b"one"}


@pytest.mark.parametrize("name", ["CON", "aux.txt", "COM1", "LPT9.log", "nul.tar.gz", "slide.svs:stream", "slide.svs.",
                                  "slide.svs ", "a<b", 'a"b', "a|b", "a?b", "a*b"])
def test_names_windows_cannot_hold_are_refused(name: str, make_client: MakeClient, raw_server: RawServer,
                                               tmp_path: Path) -> None:
    raw_server.route(FILES, 200, MULTI, multipart(("ok.dcm", b"fine"), (name, b"x")))
    with pytest.raises(UnsafeFilenameError, match="Windows"):
        make_client(raw_server, retry=NO_RETRY).download_slide_files("s", tmp_path)
    assert listing(tmp_path) == {"ok.dcm": b"fine"}


@pytest.mark.parametrize("existing, incoming", [("slide.svs", "Slide.svs"), (NFD, NFC)])
def test_an_existing_twin_is_never_replaced_or_doubled(existing: str, incoming: str, make_client: MakeClient,
                                                       raw_server: RawServer, tmp_path: Path) -> None:
    (tmp_path / existing).write_bytes(b"old")
    raw_server.route(FILES, 200, MULTI, multipart((incoming, b"new")))
    client = make_client(raw_server, retry=NO_RETRY)
    for on_exists in ("error", "overwrite"):
        with pytest.raises(DuplicateFilenameError, match="already exists.*case or Unicode"):
            client.download_slide_files("s", tmp_path, on_exists=on_exists)
        assert listing(tmp_path) == {existing: b"old"}
    assert client.download_slide_files("s", tmp_path, on_exists="skip") == [tmp_path / existing]
    assert listing(tmp_path) == {existing: b"old"}
