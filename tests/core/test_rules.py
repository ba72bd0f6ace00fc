"""The result rules (sectra_core.app.rules), each both ways: a good result passes, a result
breaking just that rule gives exactly that finding, at its JSON path."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from sectra_core import schemas as s
from sectra_core.app.builders import PrimitiveBuilder, validate_result
from sectra_core.app.rules import MAX_FINDINGS_PER_RULE, RULES, Finding, check_result, is_css_colour
from sectra_core.errors import ValidationError

# 4000 x 3000 at 0.25 µm/px (40x): y runs to 0.75; a 64 px patch at 10x covers 256 level-0 pixels.
IMAGE = s.ImageInfo(id="slide", is_streamable=True, image_size=s.Size(width=4000, height=3000),
                    tile_size=s.Size(width=256, height=256), microns_per_pixel=0.25)


def pt(x: float, y: float) -> dict[str, float]:
    return {"x": x, "y": y}


PRIMITIVE: dict[str, Any] = {
    "slideId": "slide", "displayResult": "Cells: 12", "applicationVersion": "1.0",
    "displayProperties": {"Cells": 12, "Ratio": 0.5, "Grade": "2"},
    "data": {"context": {}, "result": {"type": "primitive", "content": [{
        "style": {"strokeStyle": "#FFA500", "fillStyle": "rgba(255, 0, 0, 0.5)", "size": 2},
        "polygons": [{"points": [pt(0.1, 0.1), pt(0.2, 0.1), pt(0.2, 0.2), pt(0.1, 0.2)]}],
        "polylines": [{"points": [pt(0.3, 0.3), pt(0.4, 0.35)]}],
        "arcs": [{"center": pt(0.5, 0.5), "radius": 0.01, "startAngle": 0, "endAngle": 3.14}],
        "labels": [{"location": pt(0.6, 0.6), "label": "Cells: 12"}],
    }]}},
}
GALLERY: dict[str, Any] = {
    "slideId": "slide", "displayResult": "2 patches", "applicationVersion": "1.0",
    "data": {"context": None, "result": {"type": "patchCollection", "content": {
        "description": "Sort", "polygons": [{"points": [pt(0.2, 0.2), pt(0.6, 0.2), pt(0.6, 0.6)]}],
        "patches": [{"tag": 0, "position": pt(0.5, 0.4), "sortKeyValue": 0.9},
                    {"tag": 1, "position": pt(0.4, 0.3), "sortKeyValue": 0.1}],
        "tags": ["A", "B"], "patchSize": 64, "magnification": 10,
        "actions": [{"id": "recount", "name": "Recount"}, {"id": "undo", "name": "Undo"}],
    }}},
}
P = "data.result.content[0]"
G = "data.result.content"


def result(base: dict[str, Any], change: Callable[[dict[str, Any]], Any]) -> s.Result:
    doc = copy.deepcopy(base)
    change(doc)
    return msgspec.convert(doc, s.Result)


def item(doc: dict[str, Any]) -> Any:
    return doc["data"]["result"]["content"][0]


def gallery(doc: dict[str, Any]) -> Any:
    return doc["data"]["result"]["content"]


def _set(target: dict[str, Any], key: str, value: Any) -> None:
    target[key] = value


CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any], str]] = [
    ("slide-id", PRIMITIVE, lambda d: _set(d, "slideId", ""), "slideId"),
    ("finite", PRIMITIVE, lambda d: item(d)["polygons"][0]["points"][0].update(x=math.nan), f"{P}.polygons[0].points[0]"),
    ("on-slide", PRIMITIVE, lambda d: item(d)["polygons"][0]["points"][1].update(x=1.5), f"{P}.polygons[0].points[1].x"),
    ("on-slide", PRIMITIVE, lambda d: item(d)["labels"][0]["location"].update(y=0.8), f"{P}.labels[0].location.y"),
    ("polygon-points", PRIMITIVE,
     lambda d: _set(item(d)["polygons"][0], "points", [pt(0.1, 0.1), pt(0.2, 0.1), pt(0.1, 0.1)]), f"{P}.polygons[0].points"),
    ("polygon-self-intersection", PRIMITIVE,
     lambda d: _set(item(d)["polygons"][0], "points", [pt(0.1, 0.1), pt(0.2, 0.2), pt(0.2, 0.1), pt(0.1, 0.2)]),
     f"{P}.polygons[0].points"),
    ("polyline-points", PRIMITIVE, lambda d: _set(item(d)["polylines"][0], "points", [pt(0.3, 0.3)]), f"{P}.polylines[0].points"),
    ("arc-radius", PRIMITIVE, lambda d: item(d)["arcs"][0].update(radius=0), f"{P}.arcs[0].radius"),
    ("label-text", PRIMITIVE, lambda d: item(d)["labels"][0].update(label=" "), f"{P}.labels[0].label"),
    ("style-colour", PRIMITIVE, lambda d: item(d)["style"].update(strokeStyle="blue123"), f"{P}.style.strokeStyle"),
    ("style-size", PRIMITIVE, lambda d: item(d)["style"].update(size=-1), f"{P}.style.size"),
    ("display-properties", PRIMITIVE, lambda d: d["displayProperties"].update(Ratio=math.inf), "displayProperties['Ratio']"),
    ("display-properties", PRIMITIVE, lambda d: d["displayProperties"].update({"": "x"}), "displayProperties['']"),
    ("application-version", PRIMITIVE, lambda d: d.pop("applicationVersion"), "applicationVersion"),
    ("size-limit", PRIMITIVE, lambda d: _set(d, "displayResult", "x" * 1001), "displayResult"),
    ("gallery-region", GALLERY, lambda d: _set(gallery(d), "polygons", []), f"{G}.polygons"),
    ("gallery-tags", GALLERY, lambda d: _set(gallery(d), "tags", ["A", "A"]), f"{G}.tags"),
    ("size-limit", GALLERY, lambda d: _set(gallery(d), "tags", list("ABCDEF")), f"{G}.tags"),
    ("tag-index", GALLERY, lambda d: gallery(d)["patches"][0].update(tag=2), f"{G}.patches[0].tag"),
    ("patch-size", GALLERY, lambda d: _set(gallery(d), "patchSize", 0), f"{G}.patchSize"),
    # 256 level-0 pixels a side: a centre 0.01 * 4000 = 40 px from the left edge reaches off it.
    ("patch-region", GALLERY, lambda d: gallery(d)["patches"][0]["position"].update(x=0.01), f"{G}.patches[0].position"),
    ("patch-unique", GALLERY, lambda d: gallery(d)["patches"][1].update(tag=0, position=pt(0.5, 0.4)), f"{G}.patches[1]"),
    ("patch-unique", GALLERY, lambda d: gallery(d)["actions"][1].update(id="recount"), f"{G}.actions[1].id"),
    ("on-slide", GALLERY, lambda d: gallery(d)["patches"][0]["position"].update(y=0.9), f"{G}.patches[0].position.y"),
]


@pytest.mark.parametrize("base", [PRIMITIVE, GALLERY], ids=["primitive", "patchCollection"])
def test_good_results_pass(base: dict[str, Any]) -> None:
    good = msgspec.convert(base, s.Result)
    assert check_result(good, image=IMAGE) == []
    validate_result(good, image=IMAGE)


@pytest.mark.parametrize("rule, base, change, path", CASES, ids=[f"{c[0]}:{c[3]}" for c in CASES])
def test_each_rule_gives_exactly_its_finding(rule: str, base: dict[str, Any], change: Callable[[dict[str, Any]], Any], path: str) -> None:
    bad = result(base, change)
    [finding] = check_result(bad, image=IMAGE)
    assert (finding.rule, finding.path, finding.severity) == (rule, path, RULES[rule]), finding
    assert str(finding) == f"{path}: {finding.message} [{rule}]"
    if RULES[rule] == "error":
        with pytest.raises(ValidationError, match=f"\\[{rule}\\]"):
            validate_result(bad, image=IMAGE)
    else:
        validate_result(bad, image=IMAGE)  # warnings never stop a builder


def test_every_rule_is_tested_both_ways() -> None:
    assert {c[0] for c in CASES} == set(RULES)


def test_y_is_bounded_by_height_over_width_only_when_the_slide_is_known() -> None:
    low = result(PRIMITIVE, lambda d: item(d)["labels"][0]["location"].update(y=0.8))
    assert check_result(low) == []  # without the slide's size: y >= 0 only
    [finding] = check_result(low, max_y=0.75)
    assert finding.path == f"{P}.labels[0].location.y" and "height/width = 0.7500" in finding.message


def test_a_bool_property_is_not_a_value_sectra_shows() -> None:
    good = msgspec.convert(PRIMITIVE, s.Result)
    flagged = msgspec.structs.replace(good, display_properties={"Done": True})
    [finding] = check_result(flagged)
    assert (finding.rule, finding.path) == ("display-properties", "displayProperties['Done']")


def test_pixels_instead_of_normalised_give_one_short_list() -> None:
    # 50 polygons in level-0 pixels (~2400 x off the slide): one finding per shape, capped, and a hint.
    builder = PrimitiveBuilder()
    for k in range(50):
        builder.polygon([(0.1, 0.1), (0.2, 0.1), (0.2, 0.2)])
    content = builder.content()
    for polygon in content.content[0].polygons:  # type: ignore[union-attr]
        polygon.points[:] = [s.Point(x=p.x * 2400, y=p.y * 2400) for p in polygon.points]
    found = check_result(s.Result(slide_id="slide", application_version="1", data=s.ResultData(result=content)), max_y=0.75)
    assert [f.rule for f in found] == ["on-slide"] * (MAX_FINDINGS_PER_RULE + 1)
    assert found[0].path == f"{P}.polygons[0].points[0].x" and "look like pixels" in found[0].message
    assert found[-1].message == f"and {50 - MAX_FINDINGS_PER_RULE} more like these"


@pytest.mark.parametrize("colour", ["#FFA500", "#fff", "#11223344", "rgba(255, 0, 0, 0.5)", "rgb(10%,20%,30%)",
                                    "hsl(120 50% 50% / 0.3)", "red", "RebeccaPurple", "transparent"])
def test_css_colours_that_parse(colour: str) -> None:
    assert is_css_colour(colour)


@pytest.mark.parametrize("colour", ["blue123", "#12345", "rgb(1,2)", "rgba(a,b,c)", "", "url(x)", "notacolour"])
def test_css_colours_that_do_not(colour: str) -> None:
    assert not is_css_colour(colour)


def test_finding_is_a_wire_struct() -> None:
    finding = Finding("slideId", "slide-id", "needed")
    assert msgspec.json.decode(msgspec.json.encode(finding)) == {
        "path": "slideId", "rule": "slide-id", "message": "needed", "severity": "error"}
