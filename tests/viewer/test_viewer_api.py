"""The viewer's routes without a browser: its key, the overlay document (shapes in level-0 pixels
from sectra_core.drawing, warnings beside results, galleries), from the pytest fixtures too."""

from __future__ import annotations

import json
import urllib.request
from http.cookiejar import CookieJar
from typing import Any
from urllib.error import HTTPError

import pytest
import trio

from sectra_core import schemas as s
from sectra_mock.server import MockSectraServer
from sectra_transports.trio import AsyncSectraClient


def get(url: str, opener: Any = None) -> tuple[int, bytes, Any]:
    try:
        with (opener or urllib.request.build_opener()).open(url) as answer:
            return answer.status, answer.read(), answer.headers
    except HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers


async def test_the_fixture_mock_serves_the_viewer(sectra_mock: MockSectraServer) -> None:
    url = sectra_mock.viewer_url("slide-001")
    assert url.startswith(f"{sectra_mock.url}/viewer/slide-001?key=")
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    status, page, headers = await trio.to_thread.run_sync(get, url, opener)
    assert status == 200 and b"viewer.js" in page and "text/html" in headers["Content-Type"]
    # The page's own requests carry the key in an HttpOnly cookie scoped to /viewer.
    [cookie] = list(jar)
    assert cookie.path == "/viewer" and cookie.has_nonstandard_attr("HttpOnly")
    status, script, _ = await trio.to_thread.run_sync(get, f"{sectra_mock.url}/viewer/static/viewer.js", opener)
    assert status == 200 and b"sectraViewer" in script
    status, body, _ = await trio.to_thread.run_sync(get, f"{sectra_mock.url}/viewer/api/slides/slide-001?pyramid=1", opener)
    assert status == 200 and json.loads(body) == {"id": "slide-001", "width": 2400, "height": 1800, "tileSize": 240,
                                                  "maxLevel": 12, "mpp": 0.25}
    status, tile, headers = await trio.to_thread.run_sync(get, f"{sectra_mock.url}/viewer/tiles/slide-001/8/0_0.jpg", opener)
    assert status == 200 and tile[:2] == b"\xff\xd8" and headers["Content-Type"] == "image/jpeg"
    # Without the key, or with a wrong one: refused, and nothing leaks.
    for bad in (f"{sectra_mock.url}/viewer", f"{sectra_mock.url}/viewer/api/slides?key=wrong",
                f"{sectra_mock.url}/viewer/tiles/slide-001/8/0_0.jpg"):
        status, body, _ = await trio.to_thread.run_sync(get, bad)
        assert status == 403 and b"viewer_url" in body
    status, _, _ = await trio.to_thread.run_sync(get, sectra_mock.viewer_url("no-such-slide"))
    assert status == 404


def overlay(mock: MockSectraServer, slide_id: str, since: str = "") -> dict[str, Any]:
    key = mock.viewer_url().split("key=", 1)[1]
    status, body, _ = get(f"{mock.url}/viewer/api/slides/{slide_id}?key={key}&since={since}")
    assert status == 200, body
    return dict(json.loads(body))


async def test_overlay_has_shapes_in_level0_pixels_and_warnings_beside_results(sectra_mock: MockSectraServer) -> None:
    async with AsyncSectraClient(sectra_mock.url, sectra_mock.token) as client:
        info = await client.get_image_metadata("slide-002")  # 1536 x 2048: portrait
        w = info.image_size.width
        item = s.PrimitiveItem(style=s.Style(stroke_style="#FFA500", fill_style="rgba(255,0,0,0.5)", size=3),
                               polygons=[s.Polygon(points=[s.Point(x=0.5, y=1.2), s.Point(x=0.6, y=1.2), s.Point(x=0.6, y=1.3)])],
                               labels=[s.Label(location=s.Point(x=0.1, y=1.0), label="ANSWER: 42")])
        result = s.Result(slide_id="slide-002", display_result="ANSWER: 42",
                          display_properties={"Progress": "55 %", "Status": "running"},
                          data=s.ResultData(result=s.PrimitiveResult(content=item)))  # one object, Sectra's form
        stored = await client.create_results("api-app", result)
        patches = s.PatchContent(tags=["A", "B"], patch_size=64, magnification=20.0, patches=[
            s.Patch(tag=1, position=s.Point(x=0.5, y=0.5), sort_key_value=0.1),
            s.Patch(tag=0, position=s.Point(x=0.25, y=0.5), sort_key_value=0.9)])
        gallery = await client.create_results("api-app", s.Result(
            slide_id="slide-002", data=s.ResultData(result=s.PatchCollectionResult(content=patches))))
    sectra_mock.warn(f"PUT /applications/api-app/results/{stored.id}: unknown fields accepted: $.resultVersion")
    sectra_mock.warn("POST /applications/api-app/results: unknown fields accepted: $.extra")
    doc = await trio.to_thread.run_sync(overlay, sectra_mock, "slide-002")
    assert (doc["width"], doc["height"], doc["tileSize"], doc["mpp"]) == (1536, 2048, info.tile_size.width, 0.5)
    [app] = doc["apps"]
    assert app["id"] == "api-app" and app["warnings"] == ["POST /applications/api-app/results: unknown fields accepted: $.extra"]
    first, second = app["results"]
    assert first["progress"] == pytest.approx(0.55) and first["status"] == "running" and first["type"] == "primitive"
    # Beside the result: what the rules found when it was stored (no applicationVersion), then the PUT's.
    assert first["warnings"][-1] == f"PUT /applications/api-app/results/{stored.id}: unknown fields accepted: $.resultVersion"
    assert "[application-version]" in first["warnings"][0]
    polygon, label = first["shapes"]
    # y multiplied by the WIDTH (1.2 * 1536), not the height.
    assert polygon["points"][0] == [pytest.approx(0.5 * w), pytest.approx(1.2 * w)]
    assert (polygon["stroke"], polygon["fill"], polygon["fillOpacity"], polygon["width"]) == ("#ffa500", "#ff0000", 0.502, 3)
    assert label == {"kind": "label", "points": [[pytest.approx(0.1 * w), pytest.approx(1.0 * w)]], "stroke": "#ffa500",
                     "strokeOpacity": 1.0, "width": 3, "fill": "#ff0000", "fillOpacity": 0.502, "text": "ANSWER: 42"}
    assert second["id"] == str(gallery.id) and second["type"] == "patchCollection"
    # 64 px at 20x on a 0.5 µm/px (20x) scan: 64 level-0 pixels; highest sortKeyValue first.
    assert second["gallery"]["side"] == 64 and [p["index"] for p in second["gallery"]["patches"]] == [1, 0]
    assert second["gallery"]["patches"][0]["center"] == [pytest.approx(0.25 * w), pytest.approx(0.5 * w)]
    before = doc["version"]
    # Polling with the version it has: a short answer while nothing changed, the document after.
    assert await trio.to_thread.run_sync(overlay, sectra_mock, "slide-002", before) == {"version": before, "unchanged": True}
    sectra_mock.warn("something else")
    again = await trio.to_thread.run_sync(overlay, sectra_mock, "slide-002", before)
    assert again["version"] != before and len(again["apps"][0]["results"]) == 2


def test_slide_list_counts_results_per_app() -> None:
    from sectra_mock.viewer import slide_list

    server = MockSectraServer()
    server.state.create_result("a", s.Result(slide_id="slide-001"))
    server.state.create_result("a", s.Result(slide_id="slide-001"))
    server.state.create_result("b", s.Result(slide_id="slide-003"))
    listed = {entry["id"]: entry for entry in slide_list(server)}
    assert listed["slide-001"]["results"] == {"a": 2} and listed["slide-003"]["results"] == {"b": 1}
    assert listed["slide-002"]["results"] == {} and listed["slide-002"]["hasLabel"] is False
    assert listed["slide-001"]["mpp"] == 0.25 and listed["slide-001"]["thumbnail"].startswith("tiles/slide-001/")


def test_every_warning_about_a_result_shows_beside_it_from_post_and_put(make_sectra_mock: Any) -> None:
    # Issue #28's last gap: a result's first POST has no id in its path, so its warnings used to
    # show under the application; the structured warnings name the result they concern.
    import urllib3

    mock = make_sectra_mock(token="viewer-token")
    http = urllib3.PoolManager()
    headers = {"Authorization": "Bearer viewer-token", "Content-Type": "application/json"}
    pixels = [{"x": 240.0, "y": 240.0}, {"x": 720.0, "y": 240.0}, {"x": 720.0, "y": 480.0}]
    body = {"slideId": "slide-001", "displayResult": "in pixels", "resultVersion": "1.0",  # misspelt, unknown
            "data": {"result": {"type": "primitive", "content": [{"polygons": [{"points": pixels}]}]}}}
    other = {**body, "applicationVersion": "1.0", "displayResult": "another"}
    del other["resultVersion"]
    first = json.loads(http.request("POST", f"{mock.url}/applications/warn-app/results", body=json.dumps(body).encode(),
                                    headers=headers).data)
    second = json.loads(http.request("POST", f"{mock.url}/applications/warn-app/results", body=json.dumps(other).encode(),
                                     headers=headers).data)
    good = {**other, "data": {"result": {"type": "primitive", "content": []}}}
    r = http.request("PUT", f"{mock.url}/applications/warn-app/results/{second['id']}", body=json.dumps(
        {**good, "data": {"result": {"type": "primitive", "content": [{"style": {"strokeStyle": "nope"}}]}}}).encode(),
        headers=headers)
    assert r.status == 200, r.data
    doc = overlay(mock, "slide-001")
    [app] = doc["apps"]
    assert app["id"] == "warn-app" and app["warnings"] == []  # nothing left at the application level
    by_id = {r["id"]: r["warnings"] for r in app["results"]}
    post = by_id[str(first["id"])]
    assert post[0] == "POST /applications/warn-app/results: unknown fields accepted: $.resultVersion"
    assert any("[on-slide]" in w and "points[0].x" in w for w in post)
    assert any("[application-version]" in w for w in post)
    later = by_id[str(second["id"])]
    assert any(w.startswith("POST ") and "[on-slide]" in w for w in later)
    assert later[-1].startswith(f"PUT /applications/warn-app/results/{second['id']}: ") and "[style-colour]" in later[-1]
