"""Hostile input to every decoder: random bytes, random JSON, and mutated real payloads (spec §5).

Whatever arrives, only the SDK's own exceptions may come out; never a KeyError, TypeError,
msgspec error or RecursionError from inside.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sectra_core import operations
from sectra_core import schemas as s
from sectra_core.app import messages as w
from sectra_core.errors import DecodeError, MultipartError, SectraError
from sectra_core.headers import digits, header_int, merge_headers
from sectra_core.http import HttpRequest, HttpResponse, split_origin
from sectra_core.multipart import MultipartDecoder
from sectra_core.retry import parse_retry_after
from sectra_core.plugins import make_plugins
from sectra_core.app.messages import parse_image_notification, parse_invocation
from sectra_core.flows import parse_token

ADAPTERS = make_plugins(entry_points=False).adapters()

# Real payload shapes from spec §5 (create, modify with a gallery, notification, image info, results).
POLYGON = {"points": [{"x": 0.21, "y": 0.18}, {"x": 0.27, "y": 0.18}, {"x": 0.27, "y": 0.23}]}
CALLBACK = {"url": "https://pacs.example/ia/v1", "token": "eyJ.secret"}
IMAGE_INFO = {
    "id": "3f2a-slide", "isStreamable": True, "imageSize": {"width": 106624, "height": 77452},
    "tileSize": {"width": 240, "height": 240}, "micronsPerPixel": 0.2465,
    "focalPlanes": [{"id": "0", "offsetUm": 0.0}], "opticalPaths": [{"id": "0", "description": "Brightfield"}],
    "storedTileFormat": {"mimeType": "image/jp2", "extension": "jp2"},
    "availableTileFormats": [{"mimeType": "image/jpeg", "extension": "jpg"}],
    "fileFormat": {"mimeType": "application/dicom"}, "staining": {"displayName": "HE"},
    "block": {"displayName": "A1"}, "specimen": {"anatomy": "Breast", "description": "Resection"},
    "qualityControl": {"status": "NotSet", "versionId": "q1"},
}
GALLERY = {
    "id": 1042, "versionId": "7d1e", "slideId": "3f2a-slide", "displayResult": "10 patches",
    "displayProperties": {"Cell Ratios": "10/0/0"}, "applicationVersion": "1.0.0", "attachments": None,
    "data": {"context": None, "result": {"type": "patchCollection", "content": {
        "description": "Review", "polygons": [POLYGON],
        "patches": [{"tag": 1, "position": {"x": 0.25, "y": 0.24}, "sortKeyValue": 1.0}],
        "tags": ["A", "B", "C"], "patchSize": 64, "magnification": 10,
        "statuses": {"allowVerify": {"value": True, "message": "allowed."}},
        "actions": [{"id": "mycmd", "state": 1, "name": "MyCmd", "tooltip": "execute"}]}}},
}
PRIMITIVE = {
    "id": "7", "versionId": "v", "slideId": "s", "displayResult": "ANSWER: 42",
    "data": {"context": {}, "result": {"type": "primitive", "content": {
        "style": {"strokeStyle": "#FFA500", "fillStyle": None, "size": None}, "polygons": [POLYGON],
        "polylines": [{"points": POLYGON["points"][:2]}], "labels": [{"location": {"x": 0.5, "y": 0.4}, "label": "42"}]}}},
}
BASE = {"applicationId": "demo", "slideId": "3f2a-slide", "callbackInfo": CALLBACK, "context": {"gallery": False}, "cancellationToken": "c0"}
INVOCATIONS = [
    {**BASE, "action": "create", "input": {"type": "taggedPolygon", "content": {"polygon": POLYGON, "tags": ["T", "S"], "tagIndex": 0}}},
    {**BASE, "action": "create", "input": {"type": "multiArea", "content": {"polygons": [POLYGON, POLYGON]}}},
    {**BASE, "action": "create", "input": {"type": "wholeSlide"}},
    {**BASE, "action": "modify", "input": GALLERY},
    {**BASE, "action": "delete", "input": PRIMITIVE},
    {**BASE, "action": "cancel"},
]
NOTIFICATION = {**BASE, "action": "newImageFiles", "input": {"type": "wholeSlide"}, "imageInfo": IMAGE_INFO}

# (operation, a real answer) for the client side: every JSON-decoding endpoint.
OPERATIONS = [
    (operations.get_info(), {"apiVersion": "1.10", "softwareVersion": "4.2"}),
    (operations.get_image_metadata("s"), IMAGE_INFO),
    (operations.get_image_infos_in_case("A1"), [{**IMAGE_INFO, "accessionNumber": "A1"}]),
    (operations.get_result_by_result_id("app", 1), GALLERY),
    (operations.get_all_results("s", "app"), [GALLERY, PRIMITIVE]),
    (operations.create_results("app", s.Result(slide_id="s")), PRIMITIVE),
    (operations.get_application("app"), {"applicationId": "app", "displayName": "App", "context": "{}"}),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> Any:
    """The payload with a few places replaced by random JSON, deleted, or retyped."""
    doc = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 4))):
        path: list[Any] = []
        node = doc
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            path.append(key)
            node = node[key]
        if not path:
            return draw(json_values)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return doc


def only_sdk_errors(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except SectraError:
        pass


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = {"content-type": "application/json"}


@FAST
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    only_sdk_errors(parse_invocation, JSON, body)
    only_sdk_errors(parse_image_notification, JSON, body)
    only_sdk_errors(parse_token, body)
    for op, _ in OPERATIONS:
        only_sdk_errors(parse, op, body)


def parse(op: Any, body: bytes, status: int = 200) -> Any:
    adapter = ADAPTERS["v5.0"]
    request = adapter.build_request(op, "https://pacs.example/ia", {})
    return adapter.parse_response(op, request, HttpResponse(status, dict(JSON), body))


@FAST
@given(st.data())
def test_mutated_invocations_and_notifications(data: st.DataObject) -> None:
    payload = data.draw(st.sampled_from(INVOCATIONS))
    only_sdk_errors(parse_invocation, JSON, json.dumps(data.draw(mutated(payload))).encode())
    only_sdk_errors(parse_image_notification, JSON, json.dumps(data.draw(mutated(NOTIFICATION))).encode())


@FAST
@given(st.data())
def test_mutated_api_answers(data: st.DataObject) -> None:
    op, answer = data.draw(st.sampled_from(OPERATIONS))
    body = json.dumps(data.draw(mutated(answer))).encode()
    only_sdk_errors(parse, op, body)
    only_sdk_errors(parse, op, body, data.draw(st.sampled_from([200, 201, 204, 400, 404, 409, 429, 500])))


@FAST
@given(st.data())
def test_mutated_app_answers(data: st.DataObject) -> None:
    action = data.draw(st.sampled_from(["create", "modify", "delete", "cancel", "notification"]))
    body = json.dumps(data.draw(mutated(GALLERY if action in ("create", "modify") else {}))).encode()
    only_sdk_errors(w.decode_answer, action, HttpResponse(200, {}, body))


def test_the_real_payloads_decode() -> None:
    """The unmutated examples are valid: the tests above start from payloads that parse."""
    for payload in INVOCATIONS:
        parse_invocation(JSON, json.dumps(payload).encode())
    parse_image_notification(JSON, json.dumps(NOTIFICATION).encode())
    for op, answer in OPERATIONS:
        parse(op, json.dumps(answer).encode(), 201 if op.name == "create_result" else 200)


def test_deep_nesting_is_a_decode_error() -> None:
    deep = b'{"applicationId": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(DecodeError, match="nested too deeply"):
        parse_invocation(JSON, deep)


@FAST
@given(st.text(max_size=60) | st.from_regex(r"[0-9]{15,25}", fullmatch=True) | st.sampled_from(["²", "٣", "9" * 5000]))
def test_digit_headers_give_only_sdk_errors(value: str) -> None:
    """Retry-After, Content-Length (response and part) and repeated fields: never a bare ValueError
    (``"²".isdigit()`` is True, ``int("9" * 5000)`` passes Python's limit; issue #12, hole 9)."""
    for header in (value, f"{value}, {value}", f"1, {value}"):
        after = parse_retry_after(header)
        assert after is None or after >= 0
    n = digits(value)
    # digits() strips as str.strip does (which includes \x1c-\x1f); int() strips less, so compare stripped.
    assert n is None or (value.strip().isascii() and value.strip().isdigit() and n == int(value.strip()))
    only_sdk_errors(header_int, {"content-length": value}, "content-length", MultipartError)
    only_sdk_errors(MultipartDecoder("B").receive_data, f"--B\r\nContent-Length: {value}\r\n\r\nx\r\n--B--\r\n".encode())
    assert set(merge_headers([("Retry-After", value), ("retry-after", value)])) == {"retry-after"}


@FAST
@given(st.text(max_size=30), st.text(max_size=30), st.text(max_size=30))
def test_request_targets_and_header_values_give_only_sdk_errors(path: str, query: str, header: str) -> None:
    """Whatever a caller or a plugin puts in a URL or header: valid bytes for both transports, or
    ConfigurationError (h11 raised LocalProtocolError for a space, http.client a bare ValueError)."""
    import h11

    try:
        request = HttpRequest("GET", f"http://h:1/{path}?{query}", {"X-Sectra-SoftwareVersion": header})
    except SectraError:
        return
    target = request.url[len("http://h:1"):]
    h11.Request(method="GET", target=target, headers=[("Host", "h"), *request.headers.items()])  # h11 accepts it


@pytest.mark.parametrize(("url", "origin", "target"), [
    ("http://127.0.0.1:8080/slides/s/info?scope=x", "http://127.0.0.1:8080", "/slides/s/info?scope=x"),
    ("https://pacs.example/", "https://pacs.example", "/"),
    ("https://pacs.example", "https://pacs.example", "/"),
    ("http://[::1]:9/x?y=/z", "http://[::1]:9", "/x?y=/z"),
    ("http://h:1?q=1", "http://h:1", "/?q=1"),  # a query and no path: the path is "/"
    ("http://h/a#frag", "http://h", "/a"),
])
def test_split_origin_gives_what_a_transport_sends(url: str, origin: str, target: str) -> None:
    """Both transports cache per origin and send the target: the query is never lost with it."""
    assert split_origin(url) == (origin, target)
