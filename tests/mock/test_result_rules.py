"""The mock checks every stored result (POST and PUT, every result type) with the core's rules
(sectra_core.app.rules): by default it stores and warns, naming the JSON path and the rule;
``strict=True`` answers 400 with the same text and stores nothing."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from sectra_mock import MockSectraServer
from sectra_mock.notices import MockWarning
from tests.mock.test_server import get, send

SLIDE = "slide-001"


def points(scale: float) -> list[dict[str, float]]:
    return [{"x": 0.1 * scale, "y": 0.1 * scale}, {"x": 0.3 * scale, "y": 0.1 * scale}, {"x": 0.3 * scale, "y": 0.2 * scale}]


def body(kind: str, scale: float = 1.0) -> dict[str, Any]:
    """A result of ``kind``; ``scale=2400``: the app sent level-0 pixels instead of normalised points."""
    item = {"style": {"strokeStyle": "#00FF00"}, "polygons": [{"points": points(scale)}]}
    content: Any
    if kind == "primitive-list":
        content = {"type": "primitive", "content": [item]}
    elif kind == "primitive-object":  # Sectra's own examples send one object (spec §5.6)
        content = {"type": "primitive", "content": item}
    else:
        content = {"type": "patchCollection", "content": {
            "polygons": [{"points": points(1.0)}], "tags": ["A"], "patchSize": 16, "magnification": 40,
            "patches": [{"tag": 0, "position": {"x": 0.2 * scale, "y": 0.15 * scale}, "sortKeyValue": 1}]}}
    return {"slideId": SLIDE, "displayResult": kind, "applicationVersion": "1.0", "data": {"context": None, "result": content}}


PATH = {
    "primitive-list": "data.result.content[0].polygons[0].points[0].x",
    "primitive-object": "data.result.content[0].polygons[0].points[0].x",
    "patchCollection": "data.result.content.patches[0].position.x",
}
KINDS = list(PATH)


def rule_warnings(mock: MockSectraServer) -> list[MockWarning]:
    return [w for w in mock.warnings if isinstance(w, MockWarning) and w.rule == "on-slide"]


@pytest.mark.parametrize("kind", KINDS)
def test_good_results_store_without_a_word(mock: MockSectraServer, kind: str) -> None:
    r = send(mock, "POST", "/applications/app/results", body(kind))
    assert r.status == 201, r.data
    stored = json.loads(r.data)
    assert send(mock, "PUT", f"/applications/app/results/{stored['id']}", {**body(kind), "id": stored["id"]}).status == 200
    assert mock.warnings == []


@pytest.mark.parametrize("kind", KINDS)
def test_pixels_instead_of_normalised_warn_by_default_on_post_and_put(
    mock: MockSectraServer, kind: str, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="sectra_mock"):
        r = send(mock, "POST", "/applications/app/results", body(kind, scale=2400))
    assert r.status == 201, r.data
    rid = str(json.loads(r.data)["id"])
    [posted] = rule_warnings(mock)
    assert (posted.app_id, posted.slide_id, posted.result_id, posted.path) == ("app", SLIDE, rid, PATH[kind])
    assert posted.startswith(f"POST /applications/app/results: result {rid} on slide '{SLIDE}': {PATH[kind]}: point (")
    assert posted.endswith("[on-slide]") and "look like pixels" in posted
    assert str(posted) in caplog.text  # and in the log
    # A PUT of a good result first, then of the same mistake: the PUT is checked too.
    assert send(mock, "PUT", f"/applications/app/results/{rid}", body(kind)).status == 200
    assert len(rule_warnings(mock)) == 1
    r = send(mock, "PUT", f"/applications/app/results/{rid}", body(kind, scale=2400))
    assert r.status == 200, r.data
    put = rule_warnings(mock)[-1]
    assert put.startswith(f"PUT /applications/app/results/{rid}: ") and (put.result_id, put.path) == (rid, PATH[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_strict_answers_400_with_the_same_text_and_stores_nothing(
    make_mock: Callable[..., MockSectraServer], kind: str,
) -> None:
    strict = make_mock(strict=True)
    r = send(strict, "POST", "/applications/app/results", body(kind, scale=2400))
    assert r.status == 400
    error = json.loads(r.data)["error"]
    assert error.startswith(f"POST /applications/app/results: {PATH[kind]}: point (") and error.endswith("[on-slide]")
    assert json.loads(get(strict, f"/applications/app/results/slide/{SLIDE}").data) == []
    # PUT: refused the same way, the stored result unchanged.
    r = send(strict, "POST", "/applications/app/results", body(kind))
    assert r.status == 201, r.data
    stored = json.loads(r.data)
    r = send(strict, "PUT", f"/applications/app/results/{stored['id']}", body(kind, scale=2400))
    assert r.status == 400 and json.loads(r.data)["error"].startswith(f"PUT /applications/app/results/{stored['id']}: {PATH[kind]}: ")
    assert json.loads(get(strict, f"/applications/app/results/{stored['id']}").data)["versionId"] == stored["versionId"]
    assert strict.warnings == []


def test_y_is_checked_against_height_over_width_of_the_slide(mock: MockSectraServer) -> None:
    info = mock.image_info(SLIDE)
    max_y = info.image_size.height / info.image_size.width
    low = body("primitive-list")
    low["data"]["result"]["content"][0]["polygons"][0]["points"][2]["y"] = max_y + 0.01  # y divided by the height: off
    assert send(mock, "POST", "/applications/app/results", low).status == 201
    [w] = rule_warnings(mock)
    assert w.path == "data.result.content[0].polygons[0].points[2].y" and f"height/width = {max_y:.4f}" in w


def test_warnings_only_still_store_under_strict(make_mock: Callable[..., MockSectraServer]) -> None:
    # A self-intersecting polygon and a missing applicationVersion are drawn: warned, never refused.
    strict = make_mock(strict=True)
    bow = body("primitive-list")
    del bow["applicationVersion"]
    bow["data"]["result"]["content"][0]["polygons"][0]["points"] = [
        {"x": 0.1, "y": 0.1}, {"x": 0.2, "y": 0.2}, {"x": 0.2, "y": 0.1}, {"x": 0.1, "y": 0.2}]
    assert send(strict, "POST", "/applications/app/results", bow).status == 201
    assert sorted(w.rule for w in strict.warnings) == ["application-version", "polygon-self-intersection"]  # type: ignore[attr-defined]
