"""``sectra mock serve`` prints the viewer's address; ``sectra render`` draws an app's results from
any server into a picture file."""

from __future__ import annotations

import io
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sectra_client.cli import main
from sectra_core import schemas as s
from sectra_mock.server import MockSectraServer
from sectra_transports.urllib3 import SectraClient


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mock_serve_prints_the_viewer_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECTRA_TOKEN", raising=False)
    port, stop, out = _free_port(), threading.Event(), io.StringIO()
    thread = threading.Thread(target=main, args=(["mock", "serve", "--port", str(port), "--token", "t"],),
                              kwargs={"out": out, "stop_event": stop}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while "viewer: " not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        [line] = [ln for ln in out.getvalue().splitlines() if ln.startswith("viewer: ")]
        url = line.split(" ", 1)[1]
        assert url.startswith(f"http://127.0.0.1:{port}/viewer?key=")
        with urllib.request.urlopen(url) as page:  # noqa: S310 - loopback
            assert page.status == 200 and b"Slides in the mock" in page.read()
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def red_box(info: s.ImageInfo) -> s.Result:
    w = info.image_size.width
    corners = [(600, 600), (1200, 600), (1200, 1200), (600, 1200)]
    item = s.PrimitiveItem(style=s.Style(stroke_style="#ff0000", fill_style="#ff0000"),
                           polygons=[s.Polygon(points=[s.Point(x=x / w, y=y / w) for x, y in corners])])
    return s.Result(slide_id=info.id, display_result="box", data=s.ResultData(result=s.PrimitiveResult(content=[item])))


def test_render_writes_the_picture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    server = MockSectraServer(token="t")
    with server.run(), SectraClient(url=server.url, token="t") as client:
        stored = client.create_results("cli-app", red_box(client.get_image_metadata("slide-001")))
        client.create_results("cli-app", red_box(client.get_image_metadata("slide-002")))
        monkeypatch.setenv("SECTRA_TOKEN", "t")
        out = io.StringIO()
        target = tmp_path / "out.png"
        code = main(["render", "slide-001", "--url", server.url, "--app", "cli-app", "--level", "1",
                     "--region", "400,400,1000,1000", "-o", str(target)], out=out)
        assert code == 0, out.getvalue()
        assert "1 result(s) of cli-app over slide-001" in out.getvalue()
        with Image.open(target) as image:
            assert image.size == (500, 500)
            assert image.convert("RGB").getpixel((250, 250)) == (255, 0, 0)  # (900-400)/2
            assert image.convert("RGB").getpixel((50, 50)) != (255, 0, 0)
        code = main(["render", "slide-001", "--url", server.url, "--app", "cli-app", "--result", str(stored.id),
                     "--mpp", "2", "-o", str(tmp_path / "one.jpg")], out=out)
        assert code == 0 and (tmp_path / "one.jpg").stat().st_size > 0
        # Mistakes: a result on another slide, a region off the slide, an unknown format; no file left.
        assert main(["render", "slide-002", "--url", server.url, "--app", "cli-app", "--result", str(stored.id),
                     "-o", str(tmp_path / "wrong.png")], out=out) == 1
        assert main(["render", "slide-001", "--url", server.url, "--app", "cli-app", "--region", "0,0,99999,10",
                     "-o", str(tmp_path / "off.png")], out=out) == 1
        assert main(["render", "slide-001", "--url", server.url, "--app", "cli-app", "-o", str(tmp_path / "x.nope")],
                    out=out) == 2
    err = capsys.readouterr().err
    assert "is on slide 'slide-001', not 'slide-002'" in err and "not inside the 2400x1800 slide" in err
    assert "unknown picture format '.nope'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.jpg", "out.png"]
