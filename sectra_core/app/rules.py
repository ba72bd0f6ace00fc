"""The rules a stored result must keep to be drawn by Sectra as the app meant, written once.

The SDK's builders (:func:`sectra_core.app.builders.validate_result`), the mock (on every ``POST``
and ``PUT`` of a result) and ``sectra app check --full`` all call :func:`check_result`, so they
cannot disagree. Each broken rule is a :class:`Finding`: the JSON path of the offending value
(``data.result.content[0].polygons[3].points[0].y``), the rule's name, a message saying what to do,
and a severity: ``"error"`` (Sectra would refuse it or draw it wrongly; builders raise, a strict mock
answers 400) or ``"warning"`` (drawn, but probably not what was meant).

    findings = check_result(result, image=slide_info)   # or max_y=height / width
    errors = [f for f in findings if f.severity == "error"]

=========================  ========  ============================================================
rule                       severity  broken when
=========================  ========  ============================================================
slide-id                   error     ``slideId`` is empty
finite                     error     a coordinate is NaN or infinite
on-slide                   error     a point lies off the slide: ``x`` outside [0, 1] or ``y``
                                     outside [0, height/width] (both axes are divided by the image
                                     WIDTH, spec §2.4); ``y`` is checked up to height/width only
                                     when the slide's size is given
polygon-points             error     a polygon has fewer than 3 distinct points
polygon-self-intersection  warning   two edges of a polygon cross (checked up to
                                     :data:`MAX_INTERSECTION_POINTS` points per polygon and
                                     :data:`MAX_INTERSECTION_PAIRS` edge pairs per result)
polyline-points            error     a polyline has fewer than 2 points
arc-radius                 error     an arc's radius is not a positive number, or an angle is not
                                     finite
label-text                 warning   a label's text is empty
style-colour               error     ``strokeStyle``/``fillStyle`` is not a CSS colour
style-size                 error     ``size`` is negative
gallery-region             error     a patch gallery has no region polygon
gallery-tags               error     a patch gallery has no tags, or two equal tags
tag-index                  error     a patch's ``tag`` is not an index into the gallery's ``tags``
patch-size                 error     ``patchSize`` or ``magnification`` is not positive
patch-region               warning   a patch's square (``patchSize`` at ``magnification``, centred
                                     on its position) reaches off the slide (needs the slide's info)
patch-unique               warning   two patches share position and tag (the gallery shows the same
                                     picture twice); error for two buttons with one ``id``
display-properties         warning   a ``displayProperties`` value is not a string or a finite
                                     number, or a key is empty
application-version        warning   ``applicationVersion`` is missing (Sectra's clients expect it)
size-limit                 warning   more than :data:`MAX_POINTS` points, a ``displayResult`` longer
                                     than :data:`MAX_DISPLAY_RESULT` characters, more than
                                     :data:`MAX_PROPERTIES` properties or :data:`MAX_TAGS` tags
=========================  ========  ============================================================

Patches carry no pixels in the IA-API (Sectra cuts each patch from the slide at its position), so a
patch's "image" is decodable exactly when its square lies on the slide: that is the
``patch-region`` rule. The size limits are the SDK's guards (Sectra documents none, except the
hint of at most 5 gallery tags): past them a viewer slows down long before it refuses.

Findings are capped at :data:`MAX_FINDINGS_PER_RULE` per rule (one more says how many were left
out), so a result in pixels instead of width-normalised coordinates gives a short list, not one
finding per point.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from .. import schemas as s

__all__ = [
    "Finding", "Severity", "check_result", "errors", "is_css_colour", "RULES",
    "MAX_POINTS", "MAX_DISPLAY_RESULT", "MAX_PROPERTIES", "MAX_TAGS", "MAX_FINDINGS_PER_RULE",
    "MAX_INTERSECTION_POINTS", "MAX_INTERSECTION_PAIRS",
]

#: ``"error"``: Sectra would refuse or misdraw it; ``"warning"``: drawn, probably not as meant.
Severity = Literal["error", "warning"]

#: Every rule by name, with its severity (the table in the module's docstring).
RULES: dict[str, Severity] = {
    "slide-id": "error", "finite": "error", "on-slide": "error", "polygon-points": "error",
    "polygon-self-intersection": "warning", "polyline-points": "error", "arc-radius": "error",
    "label-text": "warning", "style-colour": "error", "style-size": "error", "gallery-region": "error",
    "gallery-tags": "error", "tag-index": "error", "patch-size": "error", "patch-region": "warning",
    "patch-unique": "warning", "display-properties": "warning", "application-version": "warning",
    "size-limit": "warning",
}

#: Points in one result past which a viewer slows down (a guard of the SDK's, not Sectra's).
MAX_POINTS = 1_000_000
#: Characters of ``displayResult`` (one line in Sectra's annotation list).
MAX_DISPLAY_RESULT = 1_000
#: Entries of ``displayProperties`` (a popup table; keys are truncated when long).
MAX_PROPERTIES = 50
#: Gallery tags (spec §5.6: "limited to 5" is hinted).
MAX_TAGS = 5
#: Findings kept per rule; the rest are counted in one more.
MAX_FINDINGS_PER_RULE = 10
#: Polygons with more points are not checked for self-intersection (the check is quadratic).
MAX_INTERSECTION_POINTS = 256
#: Edge pairs compared for self-intersection in one result; polygons past it are not checked, so
#: a result of 10,000 large polygons is checked in well under a second.
MAX_INTERSECTION_PAIRS = 1_000_000

_SLACK = 1e-9

_NAMED_COLOURS = frozenset("""
aliceblue antiquewhite aqua aquamarine azure beige bisque black blanchedalmond blue blueviolet brown
burlywood cadetblue chartreuse chocolate coral cornflowerblue cornsilk crimson cyan darkblue darkcyan
darkgoldenrod darkgray darkgreen darkgrey darkkhaki darkmagenta darkolivegreen darkorange darkorchid
darkred darksalmon darkseagreen darkslateblue darkslategray darkslategrey darkturquoise darkviolet
deeppink deepskyblue dimgray dimgrey dodgerblue firebrick floralwhite forestgreen fuchsia gainsboro
ghostwhite gold goldenrod gray green greenyellow grey honeydew hotpink indianred indigo ivory khaki
lavender lavenderblush lawngreen lemonchiffon lightblue lightcoral lightcyan lightgoldenrodyellow
lightgray lightgreen lightgrey lightpink lightsalmon lightseagreen lightskyblue lightslategray
lightslategrey lightsteelblue lightyellow lime limegreen linen magenta maroon mediumaquamarine
mediumblue mediumorchid mediumpurple mediumseagreen mediumslateblue mediumspringgreen mediumturquoise
mediumvioletred midnightblue mintcream mistyrose moccasin navajowhite navy oldlace olive olivedrab
orange orangered orchid palegoldenrod palegreen paleturquoise palevioletred papayawhip peachpuff peru
pink plum powderblue purple rebeccapurple red rosybrown royalblue saddlebrown salmon sandybrown
seagreen seashell sienna silver skyblue slateblue slategray slategrey snow springgreen steelblue tan
teal thistle tomato turquoise violet wheat white whitesmoke yellow yellowgreen transparent
currentcolor
""".split())
_HEX = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_ARG = rf"(?:{_NUMBER}(?:%|deg|rad|grad|turn)?|none)"
_FUNCTION = re.compile(
    rf"(rgba?|hsla?)\(\s*{_ARG}(?:\s*,\s*{_ARG}){{2,3}}\s*\)|(rgba?|hsla?)\(\s*{_ARG}(?:\s+{_ARG}){{2}}(?:\s*/\s*{_ARG})?\s*\)",
    re.IGNORECASE,
)


def is_css_colour(value: str) -> bool:
    """True for what a browser's canvas takes as a colour: ``#rgb[a]``/``#rrggbb[aa]``,
    ``rgb()``/``rgba()``/``hsl()``/``hsla()`` (comma or space syntax) and the CSS named colours."""
    text = value.strip()
    return bool(_HEX.fullmatch(text) or _FUNCTION.fullmatch(text) or text.lower() in _NAMED_COLOURS)


class Finding(msgspec.Struct, frozen=True):
    """One broken rule: where (a JSON path with the wire's names), which rule, what to do, how bad."""

    path: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.rule}]"


class _Findings:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.counts: dict[str, int] = {}

    def add(self, path: str, rule: str, message: str) -> None:
        n = self.counts[rule] = self.counts.get(rule, 0) + 1
        if n <= MAX_FINDINGS_PER_RULE:
            self.items.append(Finding(path, rule, message, RULES[rule]))

    def done(self) -> list[Finding]:
        out = list(self.items)
        for rule, n in self.counts.items():
            if n > MAX_FINDINGS_PER_RULE:
                out.append(Finding("$", rule, f"and {n - MAX_FINDINGS_PER_RULE} more like these", RULES[rule]))
        return out


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Checker:
    def __init__(self, max_y: float | None, image: s.ImageInfo | None) -> None:
        self.max_y = max_y
        self.image = image
        self.found = _Findings()
        self.points = 0
        self.pairs_left = MAX_INTERSECTION_PAIRS

    def point(self, p: s.Point, where: str) -> bool:
        """Check one point; False when it is broken (already reported)."""
        if not (_finite(p.x) and _finite(p.y)):
            self.found.add(where, "finite", f"coordinates must be finite numbers, got ({p.x}, {p.y})")
            return False
        y_limit = math.inf if self.max_y is None else self.max_y
        if not -_SLACK <= p.x <= 1 + _SLACK:
            self.found.add(f"{where}.x", "on-slide", self._off(p))
            return False
        if not -_SLACK <= p.y <= y_limit + _SLACK:
            self.found.add(f"{where}.y", "on-slide", self._off(p))
            return False
        return True

    def _off(self, p: s.Point) -> str:
        bound = "" if self.max_y is None else f" (y runs to height/width = {self.max_y:.4f})"
        hint = ""
        if max(abs(p.x), abs(p.y)) > 2:
            hint = "; these look like pixels: divide x and y by the image width"
        return (f"point ({p.x:.6g}, {p.y:.6g}) lies outside the slide{bound}; Sectra divides both axes by "
                f"the image width (spec §2.4){hint}")

    def shape(self, points: Sequence[s.Point], minimum: int, kind: str, where: str) -> None:
        self.points += len(points)
        for k, p in enumerate(points):
            if not self.point(p, f"{where}.points[{k}]"):
                break  # one finding per shape: a shape in pixels is one mistake, not thousands
        if kind == "polygon":
            distinct = {(p.x, p.y) for p in points}
            if len(distinct) < minimum:
                self.found.add(f"{where}.points", "polygon-points",
                               f"a polygon needs at least {minimum} points, all distinct; got {len(distinct)} distinct")
            elif len(points) <= MAX_INTERSECTION_POINTS and self._spend(len(points) * (len(points) - 3) // 2):
                crossing = _self_intersection(points)
                if crossing is not None:
                    i, j = crossing
                    self.found.add(f"{where}.points", "polygon-self-intersection",
                                   f"edges {i} and {j} cross; Sectra draws it, but its area is not what it seems")
        elif len(points) < minimum:
            self.found.add(f"{where}.points", "polyline-points", f"a {kind} needs at least {minimum} points, got {len(points)}")

    def _spend(self, pairs: int) -> bool:
        if pairs > self.pairs_left:
            return False
        self.pairs_left -= pairs
        return True

    def style(self, style: s.Style | None, where: str) -> None:
        if style is None:
            return
        for name, wire in (("stroke_style", "strokeStyle"), ("fill_style", "fillStyle")):
            value = getattr(style, name)
            if value is not None and not (isinstance(value, str) and is_css_colour(value)):
                self.found.add(f"{where}.{wire}", "style-colour", f"{wire} {value!r} is not a CSS colour (e.g. '#FFA500')")
        if style.size is not None and not (_finite(style.size) and style.size >= 0):
            self.found.add(f"{where}.size", "style-size", f"style size must be >= 0, got {style.size!r}")

    def primitives(self, items: Sequence[s.PrimitiveItem]) -> None:
        for i, item in enumerate(items):
            at = f"data.result.content[{i}]"
            self.style(item.style, f"{at}.style")
            for j, polygon in enumerate(item.polygons or ()):
                self.shape(polygon.points, 3, "polygon", f"{at}.polygons[{j}]")
            for j, line in enumerate(item.polylines or ()):
                self.shape(line.points, 2, "polyline", f"{at}.polylines[{j}]")
            for j, arc in enumerate(item.arcs or ()):
                self.points += 1
                self.point(arc.center, f"{at}.arcs[{j}].center")
                if not (_finite(arc.radius) and arc.radius > 0):
                    self.found.add(f"{at}.arcs[{j}].radius", "arc-radius", f"radius must be a positive number, got {arc.radius!r}")
                elif not (_finite(arc.start_angle) and _finite(arc.end_angle)):
                    self.found.add(f"{at}.arcs[{j}]", "arc-radius", "startAngle and endAngle must be finite numbers (radians)")
            for j, label in enumerate(item.labels or ()):
                self.points += 1
                self.point(label.location, f"{at}.labels[{j}].location")
                if not isinstance(label.label, str) or not label.label.strip():
                    self.found.add(f"{at}.labels[{j}].label", "label-text", "the label's text is empty: Sectra draws nothing")

    def gallery(self, content: s.PatchContent) -> None:
        at = "data.result.content"
        if not content.polygons:
            self.found.add(f"{at}.polygons", "gallery-region", "a patch gallery needs at least one region polygon (spec §5.6)")
        for j, polygon in enumerate(content.polygons or ()):
            self.shape(polygon.points, 3, "polygon", f"{at}.polygons[{j}]")
        tags = list(content.tags or ())
        if not tags:
            self.found.add(f"{at}.tags", "gallery-tags", "a patch gallery needs at least one tag")
        elif len(set(tags)) != len(tags):
            self.found.add(f"{at}.tags", "gallery-tags", f"tags must be unique, got {tags!r}")
        if len(tags) > MAX_TAGS:
            self.found.add(f"{at}.tags", "size-limit", f"{len(tags)} tags; Sectra's gallery shows at most {MAX_TAGS}")
        sizes_ok = True
        for name, wire in (("patch_size", "patchSize"), ("magnification", "magnification")):
            value = getattr(content, name)
            if not (_finite(value) and value > 0):
                sizes_ok = False
                self.found.add(f"{at}.{wire}", "patch-size", f"{wire} must be a positive number, got {value!r}")
        half = self._patch_half(content) if sizes_ok else None
        seen: dict[tuple[int, float, float], int] = {}
        for j, patch in enumerate(content.patches or ()):
            where = f"{at}.patches[{j}]"
            self.points += 1
            if not (isinstance(patch.tag, int) and 0 <= patch.tag < len(tags)):
                self.found.add(f"{where}.tag", "tag-index", f"tag index {patch.tag} is outside 0..{len(tags) - 1} (the gallery's tags)")
            on = self.point(patch.position, f"{where}.position")
            if on and half is not None and self.max_y is not None:
                p = patch.position
                if p.x - half < -_SLACK or p.x + half > 1 + _SLACK or p.y - half < -_SLACK or p.y + half > self.max_y + _SLACK:
                    self.found.add(f"{where}.position", "patch-region",
                                   "the patch's square reaches off the slide: Sectra cannot cut its picture whole")
            key = (patch.tag, patch.position.x, patch.position.y)
            if key in seen:
                self.found.add(where, "patch-unique", f"the same patch as patches[{seen[key]}] (position and tag)")
            else:
                seen[key] = j
        ids = [a.id for a in content.actions or ()]
        for j, action_id in enumerate(ids):
            if not action_id or action_id in ids[:j]:
                self.found.add(f"{at}.actions[{j}].id", "patch-unique", f"button ids must be unique and non-empty, got {action_id!r}")

    def _patch_half(self, content: s.PatchContent) -> float | None:
        # Half the side of a patch in width-normalised units (sectra_core.drawing.patch_side).
        if self.image is None:
            return None
        from ..drawing import patch_side
        from ..geometry import Pyramid

        pyramid = Pyramid.from_image_info(self.image)
        return patch_side(content, pyramid) / 2 / pyramid.width

    def result(self, result: s.Result) -> None:
        if not result.slide_id:
            self.found.add("slideId", "slide-id", "a result needs the slide it is drawn on")
        if not result.application_version:
            self.found.add("applicationVersion", "application-version",
                           "applicationVersion is missing: Sectra's clients expect it on every result (spec §5.6)")
        text = result.display_result or ""
        if len(text) > MAX_DISPLAY_RESULT:
            self.found.add("displayResult", "size-limit", f"{len(text)} characters; keep it under {MAX_DISPLAY_RESULT} (one line in the list)")
        properties = result.display_properties or {}
        if len(properties) > MAX_PROPERTIES:
            self.found.add("displayProperties", "size-limit", f"{len(properties)} properties; keep them under {MAX_PROPERTIES}")
        for key, value in properties.items():
            where = f"displayProperties[{key!r}]"
            if not isinstance(key, str) or not key.strip():
                self.found.add(where, "display-properties", "an empty key: Sectra shows nothing to name the value")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                self.found.add(where, "display-properties",
                               f"a {type(value).__name__}; Sectra shows strings and numbers only")
            elif isinstance(value, float) and not math.isfinite(value):
                self.found.add(where, "display-properties", f"{value!r} is not a number JSON can carry")
        content = result.data.result if result.data is not None else None
        if isinstance(content, s.PrimitiveResult):
            items = content.content if isinstance(content.content, list) else [content.content] if content.content else []
            self.primitives(items)
        elif isinstance(content, s.PatchCollectionResult) and content.content is not None:
            self.gallery(content.content)
        if self.points > MAX_POINTS:
            self.found.add("data.result", "size-limit", f"{self.points} points; keep a result under {MAX_POINTS}")


def _cross(o: s.Point, a: s.Point, b: s.Point) -> float:
    return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)


def _segments_cross(p1: s.Point, p2: s.Point, q1: s.Point, q2: s.Point) -> bool:
    # Proper crossings only: touching at an end point or overlapping collinearly is not counted.
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4))


def _self_intersection(points: Sequence[s.Point]) -> tuple[int, int] | None:
    """The first two non-adjacent edges that cross, or None (the polygon closes itself)."""
    pts = list(points)
    if len(pts) > 1 and (pts[0].x, pts[0].y) == (pts[-1].x, pts[-1].y):
        pts = pts[:-1]  # an explicitly closed ring: the closing edge is implied
    n = len(pts)
    if n < 4:
        return None
    edges = [(pts[i], pts[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        a1, a2 = edges[i]
        ax0, ax1 = min(a1.x, a2.x), max(a1.x, a2.x)
        ay0, ay1 = min(a1.y, a2.y), max(a1.y, a2.y)
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            b1, b2 = edges[j]
            if max(b1.x, b2.x) < ax0 or min(b1.x, b2.x) > ax1 or max(b1.y, b2.y) < ay0 or min(b1.y, b2.y) > ay1:
                continue
            if _segments_cross(a1, a2, b1, b2):
                return i, j
    return None


def check_result(
    result: s.Result, *, max_y: float | None = None, image: s.ImageInfo | None = None,
) -> list[Finding]:
    """Every rule ``result`` breaks, in the order of its JSON (empty: it draws as meant).

    ``max_y``: the slide's height/width, for the bottom edge; ``image``: the slide's info, which
    gives ``max_y`` and lets the patches' squares be checked too. Without either only ``x`` in
    [0, 1] and ``y >= 0`` can be checked.
    """
    if image is not None and max_y is None and image.image_size.width > 0:
        max_y = image.image_size.height / image.image_size.width
    checker = _Checker(max_y, image)
    checker.result(result)
    return checker.found.done()


def errors(findings: Iterable[Finding]) -> list[Finding]:
    """The findings of severity ``"error"``."""
    return [f for f in findings if f.severity == "error"]
