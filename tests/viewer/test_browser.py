"""The mock's viewer in a real (headless) Chromium: the slide list, a polygon on screen where its
geometry says at two zoom levels, tissue tiles, no console errors, live results, gallery patches,
and panning that fetches only newly visible tiles."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sectra_core import schemas as s
from sectra_mock.server import MockSectraServer
from sectra_transports.urllib3 import SectraClient

SLIDE = "slide-001"


@pytest.fixture(scope="module")
def mock() -> Iterator[MockSectraServer]:
    server = MockSectraServer()
    with server.run():
        yield server


@pytest.fixture(scope="module")
def client(mock: MockSectraServer) -> Iterator[SectraClient]:
    with SectraClient(url=mock.url, token=mock.token) as c:
        yield c


def wait_for(driver: Any, script: str, timeout: float = 15.0) -> Any:
    """Poll ``script`` (a JS expression) until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {script}")
        time.sleep(0.05)


def screenshot(driver: Any) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")


def severe_logs(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def box_result(slide: s.ImageInfo, colour: str, box: tuple[float, float, float, float], text: str) -> s.Result:
    """A filled rectangle given in level-0 pixels, stored width-normalised (y divided by the WIDTH)."""
    w = slide.image_size.width
    x0, y0, x1, y1 = box
    points = [s.Point(x=x / w, y=y / w) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    item = s.PrimitiveItem(style=s.Style(stroke_style=colour, fill_style=colour, size=3),
                           polygons=[s.Polygon(points=points)])
    return s.Result(slide_id=slide.id, display_result=text, display_properties={"Status": "done", "Progress": "100 %"},
                    application_version="1", data=s.ResultData(result=s.PrimitiveResult(content=[item])))


def open_slide_page(browser: Any, mock: MockSectraServer, slide_id: str = SLIDE) -> None:
    browser.get(mock.viewer_url(slide_id))
    wait_for(browser, "window.sectraViewer && window.sectraViewer.complete")


def expected_screen(browser: Any, x: float, y: float) -> tuple[int, int]:
    """Where level-0 pixel (x, y) must appear in a screenshot, from the view's origin and scale
    (computed here, not by the viewer's own transform)."""
    view = browser.execute_script("return window.sectraViewer.getView();")
    rect = browser.execute_script("const r = document.getElementById('view').getBoundingClientRect(); return [r.left, r.top];")
    return round(rect[0] + (x - view["x"]) * view["scale"]), round(rect[1] + (y - view["y"]) * view["scale"])


def is_red(pixel: tuple[int, int, int]) -> bool:
    r, g, b = pixel
    return r > 200 and g < 60 and b < 60


def test_slide_list_shows_the_demo_slides(browser: Any, mock: MockSectraServer, client: SectraClient) -> None:
    info = client.get_image_metadata("slide-002")
    client.create_results("listed-app", box_result(info, "#00aa00", (10, 10, 50, 50), "listed"))
    browser.get(mock.viewer_url())
    rows = wait_for(browser, "Array.from(document.querySelectorAll('tr.slide-row')).map(r => r.dataset.slide)")
    assert {"slide-001", "slide-002", "slide-003"} <= set(rows)
    text = browser.find_element("css selector", 'tr[data-slide="slide-002"]').text
    assert "listed-app: 1" in text and f"{info.image_size.width} × {info.image_size.height}" in text
    wait_for(browser, "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert severe_logs(browser) == []


def test_without_the_key_the_viewer_refuses(mock: MockSectraServer) -> None:
    import urllib.request
    from urllib.error import HTTPError

    with pytest.raises(HTTPError) as refused:
        urllib.request.urlopen(f"{mock.url}/viewer/api/slides")  # noqa: S310 - loopback
    refused.value.close()
    assert refused.value.code == 403


def test_polygon_drawn_where_its_geometry_says(browser: Any, mock: MockSectraServer, client: SectraClient,
                                               artifacts: Path) -> None:
    info = client.get_image_metadata(SLIDE)
    w, h = info.image_size.width, info.image_size.height
    # A box in the lower half: stored with y divided by the width, it lands there only if the
    # viewer multiplies y back by the width (by the height it would land lower, off the slide).
    box = (0.55 * w, 0.55 * h, 0.75 * w, 0.8 * h)
    stored = client.create_results("red-app", box_result(info, "#ff0000", box, "Red box"))
    open_slide_page(browser, mock)
    wait_for(browser, f"document.querySelector('.result[data-result=\"{stored.id}\"]')")
    for zoom in (1.0, 3.0):
        if zoom != 1.0:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            view = browser.execute_script("return window.sectraViewer.getView();")
            sx, sy = (cx - view["x"]) * view["scale"], (cy - view["y"]) * view["scale"]
            browser.execute_script(f"window.sectraViewer.zoomAt({zoom}, {sx}, {sy});")
            level = browser.execute_script("return window.sectraViewer.level;")
            wait_for(browser, "window.sectraViewer.complete")
            assert browser.execute_script("return window.sectraViewer.level;") == level
        image = screenshot(browser)
        inside = expected_screen(browser, box[0] + 0.5 * (box[2] - box[0]), box[1] + 0.5 * (box[3] - box[1]))
        assert is_red(image.getpixel(inside)), (zoom, inside, image.getpixel(inside))
        # Just outside each edge: not red (the box is where the geometry says, not shifted).
        for x, y in ((box[0] - 40, (box[1] + box[3]) / 2), ((box[0] + box[2]) / 2, box[1] - 40 / zoom),
                     ((box[0] + box[2]) / 2, box[3] + 40 / zoom)):
            pos = expected_screen(browser, x, y)
            if 0 <= pos[0] < image.width and 0 <= pos[1] < image.height:
                assert not is_red(image.getpixel(pos)), (zoom, pos, image.getpixel(pos))
        # Tissue is visible: the demo slide's H&E pink/purple, not only background.
        view_box = browser.execute_script(
            "const r = document.getElementById('view').getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom];")
        import numpy as np

        pixels = np.asarray(image.crop(tuple(int(v) for v in view_box)), dtype=np.int32)[::8, ::8].reshape(-1, 3)
        r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
        tissue = int(((r > 120) & (b > 100) & (g < r - 40) & ~((r > 200) & (g < 60) & (b < 60))).sum())
        assert tissue > 200, f"only {tissue} tissue-coloured samples at zoom {zoom}"
        if zoom == 1.0:
            image.save(artifacts / "viewer-slide-001.png")
    assert severe_logs(browser) == []


def test_a_result_stored_while_the_page_is_open_appears(browser: Any, mock: MockSectraServer,
                                                        client: SectraClient) -> None:
    info = client.get_image_metadata("slide-003")
    open_slide_page(browser, mock, "slide-003")
    job = client.create_results("live-app", msgspec_replace(box_result(info, "#0000ff", (100, 100, 300, 300), "Analysis running"),
                                                           display_properties={"Status": "running", "Progress": "40 %"}))
    card = f".result[data-result=\"{job.id}\"]"
    wait_for(browser, f"document.querySelector('{card} progress')")
    assert browser.execute_script(f"return document.querySelector('{card} progress').value;") == pytest.approx(0.4)
    # The job finishes: the same result is updated and the page follows without a reload.
    client.update_results("live-app", job.id, box_result(info, "#0000ff", (100, 100, 300, 300), "Done: 12 cells"),
                          version_id=job.version_id)
    wait_for(browser, f"document.querySelector('{card} .display-result').textContent.includes('Done: 12 cells')")
    # Toggling the app off hides its shapes.
    browser.find_element("css selector", '.app[data-app="live-app"] input.app-toggle').click()
    wait_for(browser, "document.querySelector('g[data-app=\"live-app\"]').style.display === 'none'")


def msgspec_replace(result: s.Result, **changes: Any) -> s.Result:
    import msgspec

    return msgspec.structs.replace(result, **changes)


def test_unknown_fields_warned_beside_the_result(browser: Any, mock: MockSectraServer, client: SectraClient) -> None:
    info = client.get_image_metadata("slide-002")
    stored = client.create_results("warned-app", box_result(info, "#00aa00", (20, 20, 60, 60), "warned"))
    import json
    import urllib.request

    body = json.loads(s.encode(box_result(info, "#00aa00", (20, 20, 60, 60), "warned")))
    body.update(id=stored.id, versionId=stored.version_id, resultVersion="1.0")
    request = urllib.request.Request(
        f"{mock.url}/applications/warned-app/results/{stored.id}", data=json.dumps(body).encode(), method="PUT",
        headers={"Authorization": f"Bearer {mock.token}", "Content-Type": "application/json"})
    urllib.request.urlopen(request).close()  # noqa: S310 - loopback
    open_slide_page(browser, mock, "slide-002")
    text = wait_for(browser, f"document.querySelector('.result[data-result=\"{stored.id}\"] .warnings li')"
                             " && document.querySelector('.result[data-result=\"" + str(stored.id) + "\"] .warnings').textContent")
    assert "resultVersion" in text


def test_rule_warnings_of_a_first_post_show_beside_the_result(browser: Any, mock: MockSectraServer, client: SectraClient) -> None:
    # Points in pixels (the classic mistake): the warning of the result's first POST, by its id.
    pixels = s.Result(slide_id="slide-002", display_result="in pixels", application_version="1.0", data=s.ResultData(
        result=s.PrimitiveResult(content=[s.PrimitiveItem(polygons=[s.Polygon(points=[
            s.Point(x=100, y=100), s.Point(x=400, y=100), s.Point(x=400, y=300)])])])))
    stored = client.create_results("pixel-app", pixels)
    open_slide_page(browser, mock, "slide-002")
    selector = f".result[data-result=\"{stored.id}\"] .warnings"
    text = wait_for(browser, f"document.querySelector('{selector} li') && document.querySelector('{selector}').textContent")
    assert "[on-slide]" in text and "data.result.content[0].polygons[0].points[0].x" in text


def test_gallery_patch_selected_highlights_its_region(browser: Any, mock: MockSectraServer, client: SectraClient) -> None:
    info = client.get_image_metadata(SLIDE)
    w = info.image_size.width
    centre = (0.3 * w, 0.2 * info.image_size.height)
    gallery = s.PatchContent(
        description="Drag patches", tags=["A", "B"], patch_size=64, magnification=40.0,
        polygons=[s.Polygon(points=[s.Point(x=0.1, y=0.05), s.Point(x=0.5, y=0.05), s.Point(x=0.5, y=0.3)])],
        patches=[s.Patch(tag=0, position=s.Point(x=0.8, y=0.5), sort_key_value=0.2),
                 s.Patch(tag=1, position=s.Point(x=centre[0] / w, y=centre[1] / w), sort_key_value=0.9)],
    )
    stored = client.create_results("gallery-app", s.Result(
        slide_id=SLIDE, display_result="2 patches", application_version="1",
        data=s.ResultData(result=s.PatchCollectionResult(content=gallery))))
    open_slide_page(browser, mock)
    selector = f".result[data-result=\"{stored.id}\"] button.patch[data-index=\"1\"]"
    wait_for(browser, f"document.querySelector('{selector}')")
    # Sorted by sortKeyValue, highest first: patch 1 (0.9) is listed first.
    first = browser.execute_script(f"return document.querySelector('.result[data-result=\"{stored.id}\"] button.patch').dataset.index;")
    assert first == "1"
    browser.find_element("css selector", selector).click()
    wait_for(browser, "document.querySelector('#marks rect.highlight')")
    wait_for(browser, "window.sectraViewer.complete")
    rect = browser.execute_script("const r = document.querySelector('#marks rect.highlight').getBoundingClientRect();"
                                  "return [r.left, r.top, r.width, r.height];")
    # 64 px at 40x on a 0.25 µm/px (40x) scan: 64 level-0 pixels, centred on the patch's position.
    left, top = expected_screen(browser, centre[0] - 32, centre[1] - 32)
    right, _ = expected_screen(browser, centre[0] + 32, centre[1] + 32)
    assert rect[0] == pytest.approx(left, abs=3) and rect[1] == pytest.approx(top, abs=3)
    assert rect[2] == pytest.approx(right - left, abs=3)
    image = screenshot(browser)
    edge = image.getpixel((round(rect[0] + 1), round(rect[1] + rect[3] / 2)))
    assert edge[0] > 200 and edge[1] > 200 and edge[2] < 90, edge


def test_panning_requests_only_newly_visible_tiles(browser: Any, mock: MockSectraServer) -> None:
    open_slide_page(browser, mock, "slide-002")
    browser.execute_script("window.sectraViewer.zoomAt(6, 600, 400);")
    wait_for(browser, "window.sectraViewer.complete")
    before = set(browser.execute_script("return window.sectraViewer.visible();"))
    seen = browser.execute_script("return window.sectraViewer.stats.requested.length;")
    from selenium.webdriver.common.action_chains import ActionChains

    # A real mouse drag: 300 px left and 150 px up moves the view by that much over the slide.
    view = browser.execute_script("return window.sectraViewer.getView();")
    area = browser.find_element("id", "view")
    ActionChains(browser).move_to_element(area).click_and_hold().move_by_offset(-150, -75) \
        .move_by_offset(-150, -75).release().perform()
    moved = browser.execute_script("return window.sectraViewer.getView();")
    assert (moved["x"] - view["x"]) * view["scale"] == pytest.approx(300, abs=2)
    assert (moved["y"] - view["y"]) * view["scale"] == pytest.approx(150, abs=2)
    wait_for(browser, "window.sectraViewer.complete")
    after = set(browser.execute_script("return window.sectraViewer.visible();"))
    new = browser.execute_script(f"return window.sectraViewer.stats.requested.slice({seen});")
    assert after - before, "the pan should have uncovered new tiles"
    assert len(new) == len(set(new)), "a tile was requested twice"
    assert set(new) <= after - before, set(new) - (after - before)
    requested = set(browser.execute_script("return window.sectraViewer.stats.requested;"))
    assert after <= requested
    # The mouse wheel zooms in around the pointer; "0" fits the slide again; arrows pan.
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    scale = browser.execute_script("return window.sectraViewer.getView().scale;")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(area), 0, -200).perform()
    wait_for(browser, f"window.sectraViewer.getView().scale > {scale} * 1.2")
    area.send_keys("0")
    fitted = wait_for(browser, f"window.sectraViewer.getView().scale < {scale} && window.sectraViewer.getView()")
    area.send_keys("\ue014")  # ArrowRight: the view moves 100 px right over the slide
    wait_for(browser, f"Math.abs((window.sectraViewer.getView().x - {fitted['x']}) * {fitted['scale']} - 100) < 1")
    assert severe_logs(browser) == []


def test_a_tagged_polygon_input_is_drawn_with_its_tag(browser: Any, mock: MockSectraServer, client: SectraClient) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    info = client.get_image_metadata("slide-003")
    w = info.image_size.width
    corners = [(300, 200), (700, 200), (700, 500), (300, 500)]

    class App(BaseHTTPRequestHandler):
        """A tiny app: stores a result for the invocation it gets and answers with it."""

        def do_POST(self) -> None:
            invocation = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            assert invocation["input"]["type"] == "taggedPolygon"
            stored = client.create_results("tagged-app", box_result(info, "#00c0c0", (320, 220, 360, 260), "found"))
            body = s.encode(stored)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=app.serve_forever, daemon=True)
    thread.start()
    try:
        drawn = s.TaggedPolygonInput(content=s.TaggedPolygonContent(
            polygon=s.Polygon(points=[s.Point(x=x / w, y=y / w) for x, y in corners]), tags=["Stroma", "Tumour"], tag_index=1))
        mock.trigger(f"http://127.0.0.1:{app.server_port}/", application_id="tagged-app", slide_id="slide-003", input=drawn)
    finally:
        app.shutdown()
        app.server_close()
        thread.join(5)
    open_slide_page(browser, mock, "slide-003")
    note = wait_for(browser, "document.querySelector('.app[data-app=\"tagged-app\"] .input-note')"
                             " && document.querySelector('.app[data-app=\"tagged-app\"] .input-note').textContent")
    assert "taggedPolygon" in note and "Tumour" in note
    labels = browser.execute_script("return Array.from(document.querySelectorAll('#labels text')).map(t => t.textContent);")
    assert "Tumour" in labels
    image = screenshot(browser)
    x, y = expected_screen(browser, 300, 350)  # the middle of the drawn polygon's left edge
    found = [image.getpixel((x + dx, y)) for dx in (-1, 0, 1)]
    assert any(r > 180 and g < 100 and b > 180 for r, g, b in found), found
