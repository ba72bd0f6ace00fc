"""The ``sectra`` command line, each command against a real mock on loopback."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from examples.apps import patch_gallery
from sectra_client.app import AnalysisApp, AppServer, create_app
from sectra_client.cli import main
from sectra_client.cli._embedded_mock import slides_from_dir
from sectra_core import schemas as s
from sectra_core.errors import ServerError
from sectra_core.retry import NO_RETRY
from sectra_mock import MockSectraServer

from .conftest import TOKEN


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, mock: MockSectraServer) -> None:
    monkeypatch.setenv("SECTRA_URL", mock.url)
    monkeypatch.setenv("SECTRA_TOKEN", TOKEN)
    monkeypatch.delenv("SECTRA_PASSWORD", raising=False)


def run(*argv: str, **overrides: object) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out, **overrides)
    return code, out.getvalue()


def test_info_and_slide(mock: MockSectraServer) -> None:
    code, out = run("info")
    assert code == 0 and json.loads(out)["apiVersion"] == "1.10"
    code, out = run("slide", "slide-1", "--extended")
    data = json.loads(out)
    assert code == 0 and data["id"] == "slide-1" and "examCode" in data and "accessionNumber" not in data
    assert "accessionNumber" in json.loads(run("slide", "slide-1", "--phi")[1])


def test_errors_are_short_and_never_show_the_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SECTRA_TOKEN", "wrong-secret-token")
    code, _ = run("info")
    err = capsys.readouterr().err
    assert code == 1 and "401" in err and "wrong-secret-token" not in err  # a failure, not a usage error
    monkeypatch.delenv("SECTRA_TOKEN")
    assert run("info")[0] == 2 and "SECTRA_TOKEN" in capsys.readouterr().err


def test_password_login_prompts_hidden(make_mock, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    server = make_mock(users={"ann": "s3cret-pw"})
    monkeypatch.setenv("SECTRA_URL", server.url)
    monkeypatch.delenv("SECTRA_TOKEN")
    prompts: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or "s3cret-pw")
    code, out = run("info", "--username", "ann", "--application-id", "my-app")
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert prompts == ["Password for ann: "] and server.logins == 1
    assert "s3cret-pw" not in out + captured.out + captured.err
    assert run("info", "--username", "ann")[0] == 2  # needs --application-id


def test_download_slide_with_progress_to_a_non_terminal(mock: MockSectraServer, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    mock.add_synthetic_slide("big", 3 * 2**20, n_files=3)
    progress = io.StringIO()
    code, out = run("download", "big", "-o", str(tmp_path), progress_stream=progress)
    assert code == 0
    paths = [Path(line) for line in out.splitlines()]
    assert len(paths) == 3 and sum(p.stat().st_size for p in paths) == 3 * 2**20
    lines = progress.getvalue().splitlines()
    assert "\r" not in progress.getvalue() and "\x1b" not in progress.getvalue()  # no redraws off a terminal
    assert any("100.0%" in line for line in lines) and sum(line.startswith("done ") for line in lines) == 3
    # existing files: an error by default, skipped or overwritten on request
    assert run("download", "big", "-o", str(tmp_path), progress_stream=io.StringIO())[0] == 2
    assert "already exists; pass --skip-existing or --overwrite" in capsys.readouterr().err
    assert run("download", "big", "-o", str(tmp_path), "--skip-existing", progress_stream=io.StringIO())[0] == 0


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_leave_no_partial_file(mock: MockSectraServer, tmp_path: Path, signum: int,
                                                  status: int) -> None:
    mock.add_synthetic_slide("slow", 20_000_000, n_files=1)
    mock.faults.add("trickle", "files", chunk=65_536, seconds=0.01, times=None)
    env = {**os.environ, "SECTRA_URL": mock.url, "SECTRA_TOKEN": TOKEN}
    proc = subprocess.Popen([sys.executable, "-m", "sectra_client", "download", "slow", "-o", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()  # the first progress line: the file is being written
        assert "%" in first and any(tmp_path.iterdir())
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == status and "stopped in" in err and "done" not in err
    assert list(tmp_path.iterdir()) == []


def test_download_a_case_by_accession(mock: MockSectraServer, tmp_path: Path) -> None:
    for slide_id in ("c1", "c2"):
        mock.add_slide(msgspec.structs.replace(mock.image_info(slide_id), accession_number="ACC-77"))
        mock.add_synthetic_slide(slide_id, 100_000, n_files=2)
    progress = io.StringIO()
    code, out = run("download", "ACC-77", "-o", str(tmp_path), progress_stream=progress)  # not a slide id → a case
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert sorted({r[0] for r in rows}) == ["c1", "c2"] and len(rows) == 4
    assert all(Path(r[1]).parent.name == r[0] for r in rows)
    assert all(line.startswith(("c1: ", "c2: ")) for line in progress.getvalue().splitlines())
    assert run("download", "nothing-here", "--case", "-o", str(tmp_path), progress_stream=io.StringIO())[0] == 1


def test_results_list_and_get(mock: MockSectraServer) -> None:
    from sectra_client import SectraClient

    with SectraClient(url=mock.url, token=TOKEN) as client:
        stored = client.create_results("app", s.Result(slide_id="slide-1", display_result="7 cells"))
    code, out = run("results", "list", "slide-1", "--app", "app")
    assert code == 0 and out == f"{stored.id}\t{stored.version_id}\t7 cells\n"
    assert json.loads(run("results", "list", "slide-1", "--app", "app", "--json")[1])[0]["id"] == stored.id
    assert json.loads(run("results", "get", str(stored.id), "--app", "app")[1])["displayResult"] == "7 cells"


def test_mock_serve_a_folder_of_slides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dicom-slide").mkdir()
    for i in range(2):
        (tmp_path / "dicom-slide" / f"part{i}.dcm").write_bytes(bytes([i]) * 5000)
    (tmp_path / "single.svs").write_bytes(b"svs" * 1000)
    (tmp_path / ".hidden").write_bytes(b"x")
    assert {k: [p.name for p in v] for k, v in slides_from_dir(tmp_path).items()} == {
        "dicom-slide": ["part0.dcm", "part1.dcm"], "single": ["single.svs"]}

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stop = threading.Event()
    out = io.StringIO()
    thread = threading.Thread(target=main, args=(["mock", "serve", "--port", str(port), "--slides-dir", str(tmp_path), "--token", "t",
                                                  "--fault", "status:image_info,status=503,times=1"],),
                              kwargs={"out": out, "stop_event": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while "mock Sectra server" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        from sectra_client import SectraClient

        with SectraClient(url=f"http://127.0.0.1:{port}", token="t", retry=NO_RETRY) as client:
            with pytest.raises(ServerError, match="503"):  # the injected fault, once
                client.get_image_metadata("dicom-slide")
            assert client.get_image_metadata("dicom-slide").id == "dicom-slide"
            got = client.download_slide_files("dicom-slide", tmp_path / "out")
            assert [p.read_bytes() for p in got] == [b"\x00" * 5000, b"\x01" * 5000]
            [single] = client.download_slide_files("single", tmp_path / "out1")
            assert single.name == "single.svs" and single.read_bytes() == b"svs" * 1000
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive() and "2 slides" in out.getvalue()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_app_check(tmp_path: Path) -> None:
    port = _free_port()  # the port the check's mock will use: the app must trust it
    server = AppServer(create_app(patch_gallery.app, url_prefix="/gallery", trusted_callbacks=[f"http://127.0.0.1:{port}"]))
    untrusting = AppServer(create_app(patch_gallery.app, url_prefix="/gallery"))
    broken = AnalysisApp(application_id="b", display_name="B", manufacturer="M")

    @broken.on_create
    def create(ctx):  # type: ignore[no-untyped-def]
        return s.Result(slide_id=ctx.slide_id)  # fine...

    @broken.on_notification
    def note(ctx):  # type: ignore[no-untyped-def]
        return None

    bad = AppServer(create_app(AnalysisApp(s.Registration(application_id="x", display_name="X", manufacturer="", url="",
                                                           input_template=s.InputTemplate(type="taggedPolygon"))),
                                 trusted_callbacks=[f"http://127.0.0.1:{port}"]))
    with server.run() as base, bad.run() as bad_base, untrusting.run() as untrusting_base:
        code, out = run("app", "check", f"{base}/gallery", "--mock-port", str(port))
        assert code == 0 and "registration: patch-gallery" in out and "create answered with stored result" in out
        assert out.endswith("ok\n")
        # an app that was not told to trust the check's mock refuses it, and the check says how to fix it
        code, out = run("app", "check", f"{untrusting_base}/gallery")
        assert code == 1 and "HTTP 403" in out and "HINT: the app does not trust this check's mock at http://127.0.0.1:" in out
        assert "SECTRA_TRUSTED_CALLBACKS=http://127.0.0.1:" in out
        code, out = run("app", "check", bad_base, "--mock-port", str(port))
        assert code == 1 and "PROBLEM: manufacturer is empty" in out and "no create handler" in out
        assert run("app", "check", bad_base, "--no-invoke")[0] == 1


def test_app_check_on_a_real_slide_from_a_folder(tmp_path: Path) -> None:
    import shutil

    from sectra_mock.demo_slides import ensure_demo_slides

    shutil.copy(ensure_demo_slides()["slide-002"][0], tmp_path / "my-scan.svs")
    seen: list[s.ImageInfo] = []
    app = AnalysisApp(application_id="px", display_name="Pixels", manufacturer="M")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        seen.append(await ctx.client.get_image_metadata(ctx.slide_id))
        return s.Result(slide_id=ctx.slide_id, display_result="seen")

    port = _free_port()  # the app trusts the check's mock at a port fixed in advance
    with AppServer(create_app(app, url_prefix="/px", trusted_callbacks=[f"http://127.0.0.1:{port}"])).run() as base:
        code, out = run("app", "check", f"{base}/px", "--slides-dir", str(tmp_path), "--slide", "my-scan",
                        "--mock-port", str(port))
    assert code == 0 and "my-scan: 1 file(s), image/tiff 1536x2048 px, 0.5 um/px" in out, out
    assert [(i.id, i.image_size.width, i.image_size.height) for i in seen] == [("my-scan", 1536, 2048)]


def test_console_script_is_installed(mock: MockSectraServer) -> None:
    env = {**os.environ, "SECTRA_URL": mock.url, "SECTRA_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-m", "sectra_client", "info"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and '"apiVersion": "1.10"' in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_mock_serve_invokes_an_app_on_a_real_slide(tmp_path: Path) -> None:
    """``sectra mock serve --slides-dir --invoke URL --slide ID``, the real entry point in a
    subprocess: the app's create reads the slide's real pixels back from the mock and stores a
    result, which the command prints; it keeps serving; an untrusting app and an unknown slide
    are one clear line each, and the mock serves on."""
    import shutil

    import numpy as np
    from PIL import Image

    from sectra_client import SectraClient
    from sectra_mock.demo_slides import ensure_demo_slides

    shutil.copy(ensure_demo_slides()["slide-002"][0], tmp_path / "my-scan.svs")
    app = AnalysisApp(application_id="px", display_name="Pixels", manufacturer="M")

    @app.on_create
    async def create(ctx):  # type: ignore[no-untyped-def]
        info = await ctx.client.get_image_metadata(ctx.slide_id)
        level = 10  # 1536x2048 at level 11 is the full size; level 10 halves it
        tile = await ctx.client.get_tile(ctx.slide_id, level=level, col=0, row=0)
        grey = np.asarray(Image.open(io.BytesIO(tile)).convert("L"))
        return s.Result(slide_id=ctx.slide_id, display_result=f"{info.image_size.width}x{info.image_size.height} mean {grey.mean():.1f}")

    notified: list[str] = []

    @app.on_notification
    def note(ctx):  # type: ignore[no-untyped-def]
        notified.append(ctx.slide_id)

    port = _free_port()  # the app trusts the mock at a port fixed in advance
    trusting = AppServer(create_app(app, url_prefix="/px", trusted_callbacks=[f"http://127.0.0.1:{port}"]))
    untrusting = AppServer(create_app(app, url_prefix="/px"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.pop("SECTRA_TOKEN", None)
    with trusting.run() as base, untrusting.run() as other:

        def serve(*extra: str) -> tuple[subprocess.Popen[str], list[str]]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sectra_client", "mock", "serve", "--port", str(port), "--token", "t",
                 "--slides-dir", str(tmp_path), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            assert proc.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while not lines or lines[-1] != "still serving; Ctrl-C stops":
                assert time.monotonic() < deadline and proc.poll() is None, (lines, proc.stderr and proc.stderr.read())
                lines.append(proc.stdout.readline().rstrip("\n"))
            return proc, lines

        def stop(proc: subprocess.Popen[str]) -> None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop
            proc.communicate(timeout=30)  # and closes the pipes
            assert proc.returncode == 0

        proc, lines = serve("--invoke", f"{base}/px", "--slide", "my-scan", "--slide", "slide-001")
        try:
            text = "\n".join(lines)
            expected = np.asarray(_deepzoom_tile(tmp_path / "my-scan.svs", 10).convert("L")).mean()
            assert f"invoking {base}/px (create) on slide my-scan" in text
            stored = [line for line in lines if line.startswith("create answered with stored result")]
            assert len(stored) == 2, lines
            assert stored[0].split(": ", 1)[1].startswith("1536x2048 mean ")  # the file's size...
            assert abs(float(stored[0].rsplit(" ", 1)[1]) - expected) < 2, (stored, expected)  # ...and pixels
            assert stored[1].split(": ", 1)[1].startswith("2400x1800 mean "), stored  # demo slide-001
            assert "PROBLEM" not in text
            # Still serving: the stored results are there for any client to read.
            with SectraClient(url=f"http://127.0.0.1:{port}", token="t", retry=NO_RETRY) as client:
                [result] = client.get_all_results("my-scan", "px")
                assert result.display_result and result.display_result.startswith("1536x2048 mean")
        finally:
            stop(proc)
        proc, lines = serve("--invoke", f"{base}/px", "--slide", "my-scan", "--action", "notification")
        stop(proc)
        assert "notification for slide my-scan accepted" in lines and notified == ["my-scan"], lines
        proc, lines = serve("--invoke", f"{other}/px", "--slide", "my-scan")
        stop(proc)
        text = "\n".join(lines)
        assert "PROBLEM: create invocation:" in text and "HTTP 403" in text
        assert f"HINT: the app does not trust this mock at http://127.0.0.1:{port}; start the app with " \
               f"SECTRA_TRUSTED_CALLBACKS=http://127.0.0.1:{port} and rerun with --port {port}" in text
        proc, lines = serve("--invoke", f"{base}/px", "--slide", "my-scna")
        stop(proc)
        assert any(line.startswith("PROBLEM: --slide my-scna: no such slide in this mock (it holds ") and "my-scan" in line
                   for line in lines), lines
    code, _ = run("mock", "serve", "--slide", "my-scan")  # --slide without --invoke: a usage error
    assert code == 2
    assert run("mock", "serve", "--invoke", "localhost:5000/px")[0] == 2  # no scheme


def _deepzoom_tile(path: Path, level: int) -> Any:
    """OpenSlide's own DZI tile (0, 0) at ``level`` of the file, read directly."""
    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    return DeepZoomGenerator(openslide.OpenSlide(str(path)), 240, 0, limit_bounds=False).get_tile(level, (0, 0))
