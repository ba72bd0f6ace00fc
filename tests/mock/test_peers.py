"""Request shapes Sectra's own clients and examples send, replayed against the mock (issue #14).

Each payload is written here from the spec (§4, §5), in the shape the peer sends: pydantic models
that send ``null`` for every unset field, a trailing slash on ``results/``, a primitive ``content``
as one object, a misspelt ``resultVersion``, a second ``?`` before ``appId``, a downloader that
reads only ``filename=``, an app without ``/info``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import urllib3

from sectra_client import SectraClient
from sectra_core import schemas as s
from sectra_core.headers import content_disposition_filename
from sectra_mock import MockSectraServer
from tests.conftest import POLL_INTERVAL, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
http = urllib3.PoolManager()

P = {"x": 0.1, "y": 0.1}


def send(server: MockSectraServer, method: str, path: str, body: object = None) -> urllib3.BaseHTTPResponse:
    data = None if body is None else json.dumps(body).encode()
    headers = {**AUTH, "Content-Type": "application/json"} if data is not None else AUTH
    return http.request(method, server.url + path, body=data, headers=headers)


#: A primitive result as a pydantic client with ``exclude_none=False`` serialises it (spec §5.6).
PYDANTIC_PRIMITIVE = {
    "slideId": "slide-001", "displayResult": "3 regions", "displayProperties": None, "applicationVersion": "1.0",
    "attachments": None,
    "data": {"context": None, "result": {"type": "primitive", "content": [
        {"style": {"strokeStyle": "#FFA500", "fillStyle": None, "size": None},
         "polygons": [{"points": [P, {"x": 0.2, "y": 0.1}, {"x": 0.2, "y": 0.2}]}],
         "polylines": None, "arcs": None, "labels": None},
        {"style": None, "polygons": None, "polylines": None, "labels": [{"location": P, "label": "A"}]},
    ]}},
}

#: A patch collection from the same kind of client: statuses with null message/value, null actions.
PYDANTIC_PATCHES = {
    "slideId": "slide-001", "displayResult": "2 patches", "displayProperties": {"Cells": 2}, "applicationVersion": "1.0",
    "attachments": None,
    "data": {"context": None, "result": {"type": "patchCollection", "content": {
        "description": "Review", "polygons": [{"points": [P, {"x": 0.3, "y": 0.1}, {"x": 0.3, "y": 0.3}]}],
        "patches": [{"tag": 0, "position": P, "sortKeyValue": 0.9}], "tags": ["A", "B"], "patchSize": 64,
        "magnification": 10, "statuses": {"allowVerify": {"value": None, "message": None}}, "actions": None}}},
}


def test_pydantic_nulls_are_stored_and_read_back(mock: MockSectraServer) -> None:
    for body in (PYDANTIC_PRIMITIVE, PYDANTIC_PATCHES):
        r = send(mock, "POST", "/applications/app/results", body)
        assert r.status == 201, r.data
        echoed = json.loads(r.data)
        assert "null" not in r.data.decode()  # absent, not null: strict clients decode it too
        # Our client decodes the echo, and the same null-laden body as a ResultResponse.
        s.decode(s.decoder(s.ResultResponse), r.data, "echo")
        s.decode(s.decoder(s.ResultResponse), json.dumps({**body, "id": 1, "versionId": "v"}), "nulls")
        put = send(mock, "PUT", f"/applications/app/results/{echoed['id']}", {**body, "id": echoed["id"], "versionId": None})
        assert put.status == 200, put.data
    [prim, patches] = mock.get_results("app", "slide-001")
    assert isinstance(prim.data.result, s.PrimitiveResult) and prim.data.result.content[1].labels[0].label == "A"
    assert prim.data.result.content[0].polylines == [] and prim.display_properties == {}
    assert isinstance(patches.data.result, s.PatchCollectionResult)
    status = patches.data.result.content.statuses["allowVerify"]
    assert (status.value, status.message, patches.data.result.content.actions) == (True, "", [])


def test_trailing_slash_on_every_route(mock: MockSectraServer) -> None:
    # Sectra's whole-slide example and viewer backend POST to ".../results/" (spec §4.11).
    r = send(mock, "POST", "/applications/app/results/", {"slideId": "slide-001", "displayResult": "queued"})
    assert r.status == 201, r.data
    rid = json.loads(r.data)["id"]
    for path in ["/info/", "/slides/slide-001/info/", f"/applications/app/results/{rid}/",
                 "/applications/app/results/slide/slide-001/", "/slides/slide-001/label/"]:
        assert send(mock, "GET", path).status == 200, path
    assert send(mock, "PUT", f"/applications/app/results/{rid}/", {"slideId": "slide-001"}).status == 200


def test_single_object_primitive_content_is_echoed_as_sent(mock: MockSectraServer) -> None:
    # Sectra's basic and whole-slide examples put one object in content (spec §5.6 [C]).
    item = {"polygons": [{"points": [P, {"x": 0.2, "y": 0.1}, {"x": 0.2, "y": 0.2}]}],
            "labels": [{"location": P, "label": "ANSWER: 42"}]}
    single = {"slideId": "slide-001", "displayResult": "ANSWER: 42", "applicationVersion": "0.1.0",
              "data": {"context": {}, "result": {"type": "primitive", "content": item}}}
    listed = {**single, "data": {"context": {}, "result": {"type": "primitive", "content": [item]}}}
    created = json.loads(send(mock, "POST", "/applications/app/results", single).data)
    other = json.loads(send(mock, "POST", "/applications/app/results", listed).data)
    assert created["data"]["result"]["content"] == item
    assert other["data"]["result"]["content"] == [item]  # a list stays a list
    got = json.loads(send(mock, "GET", f"/applications/app/results/{created['id']}").data)
    assert got["data"]["result"]["content"] == item
    both = json.loads(send(mock, "GET", "/applications/app/results/slide/slide-001").data)
    assert [b["data"]["result"]["content"] for b in both] == [item, [item]]
    updated = send(mock, "PUT", f"/applications/app/results/{created['id']}", {**created, "displayResult": "43"})
    assert json.loads(updated.data)["data"]["result"]["content"] == item
    relisted = send(mock, "PUT", f"/applications/app/results/{created['id']}", {**listed, "displayResult": "44"})
    assert json.loads(relisted.data)["data"]["result"]["content"] == [item]  # sent as a list now
    with SectraClient(url=mock.url, token=TOKEN) as client:  # our client reads both shapes
        assert client.get_result_by_result_id("app", other["id"]).data.result.content[0].labels[0].label == "ANSWER: 42"  # type: ignore[union-attr]


def test_misspelt_result_version_is_a_warning(mock: MockSectraServer, make_mock: Callable[..., MockSectraServer]) -> None:
    # Sectra's basic example stores its patch collection with "resultVersion" (spec §5.6).
    body = {"slideId": "slide-001", "displayResult": "patches", "resultVersion": "1.0",
            "data": {"context": None, "result": {"type": "patchCollection", "content": {"tags": ["A"]}}}}
    assert send(mock, "POST", "/applications/app/results/", body).status == 201
    assert mock.warnings[0] == "POST /applications/app/results/: unknown fields accepted: $.resultVersion"
    # ... and the result rules (sectra_core.app.rules) say what the misspelling and the missing region cost.
    assert [w.rule for w in mock.warnings] == ["unknown-field", "application-version", "gallery-region"]  # type: ignore[attr-defined]
    strict = make_mock(strict=True)
    r = send(strict, "POST", "/applications/app/results/", body)
    assert r.status == 400 and "$.resultVersion" in json.loads(r.data)["error"]


def test_non_ascii_file_names_reach_filename_only_clients(mock: MockSectraServer, tmp_path: Path) -> None:
    name = "Präparat ü ß.dcm"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / name).write_bytes(b"DICM" * 10)
    (tmp_path / "src" / "Ärger.dcm").write_bytes(b"x" * 7)
    mock.add_slide_files("one", [tmp_path / "src" / name])
    mock.add_slide_files("two", sorted((tmp_path / "src").iterdir()))
    r = http.request("GET", mock.url + "/slides/one/files", headers=AUTH, preload_content=True)
    raw = r.headers["Content-Disposition"].encode("latin-1").decode("utf-8")  # the bytes on the wire
    # Sectra's downloader and whole-slide worker: *everything* after filename=, quotes stripped
    # (spec §7), so filename= must come last (issue 24: it saved 'Präparat ü ß.dcm"; filename*=...').
    assert raw.split("filename=")[1].strip('"') == name
    assert "filename*=UTF-8''Pr%C3%A4parat%20%C3%BC%20%C3%9F.dcm" in raw
    body = http.request("GET", mock.url + "/slides/two/files", headers=AUTH).data
    # Its multipart parser: the part header split on ";", the filename= parameter, quotes stripped.
    part_names = [next(p.strip()[len(b"filename="):].strip(b'"') for p in h.split(b";") if p.strip().startswith(b"filename="))
                  .decode("utf-8") for h in body.split(b"\r\n") if h.startswith(b"Content-Disposition")]
    assert part_names == ["Präparat ü ß.dcm", "Ärger.dcm"]
    with SectraClient(url=mock.url, token=TOKEN) as client:  # ours: both shapes, every variant
        assert [p.name for p in client.download_slide_files("one", tmp_path / "a")] == [name]
        assert [p.name for p in client.download_slide_files("two", tmp_path / "b")] == part_names
    # A server sending only the UTF-8 filename= (no filename*): transports decode it as latin-1.
    mangled = f'attachment; filename="{name}"'.encode().decode("latin-1")
    assert content_disposition_filename(mangled) == name
    assert content_disposition_filename('attachment; filename="caf\xe9.dcm"') == "caf\xe9.dcm"  # real latin-1 stays


def test_a_float_focal_plane_is_that_plane(mock: MockSectraServer) -> None:
    """Sectra's external-viewer backend asks ``..._0.0.jpeg`` for plane "0" (spec §6, issue 24)."""
    plain = send(mock, "GET", "/images/slide-001_files/9/0_0.jpeg")
    assert plain.status == 200
    for given in ("0", "0.0", "0.00", "0e0", "-0.0"):
        r = send(mock, "GET", f"/images/slide-001_files/9/0_0_{given}.jpeg")
        assert (r.status, r.headers["Content-Type"], r.data) == (200, "image/jpeg", plain.data), given
    for wrong in ("1.0", "0.5", "nan", "inf", "zero"):
        r = send(mock, "GET", f"/images/slide-001_files/9/0_0_{wrong}.jpeg")
        assert r.status == 404 and "no focal plane" in r.json()["error"], wrong


def test_a_focal_plane_is_a_plain_ascii_number_or_an_id(mock: MockSectraServer) -> None:
    """Python's ``float`` also reads full-width and Arabic-Indic digits, ``_`` separators and
    surrounding blanks: none is a number a client writes, so none names plane "0" (review, issue 24)."""
    for wrong in ("%EF%BC%90", "%D9%A0", "0_0", "%200", "0%20", "%090"):  # "０", "٠", "0_0", " 0", "0 ", "\t0"
        r = send(mock, "GET", f"/images/slide-001_files/9/0_0_{wrong}.jpeg")
        assert r.status == 404, wrong


def test_quality_control_in_basic_scope(mock: MockSectraServer) -> None:
    # Sectra's contrib README reads qualityControl from a basic-scope info (spec §4.16).
    qc = json.loads(send(mock, "GET", "/slides/slide-001/info").data)["qualityControl"]
    body = {"applicationVersion": "1.0", "qualityControl": {"status": "QualityOk", "versionId": qc["versionId"]}}
    assert send(mock, "PUT", "/slides/slide-001/qualityControl", body).status == 200
    assert json.loads(send(mock, "GET", "/slides/slide-001/info").data)["qualityControl"]["status"] == "QualityOk"


def test_launch_url_with_a_second_question_mark(mock: MockSectraServer) -> None:
    # Sectra's viewer backend appends "?appId=" to a launch URL that already has a query (spec §4.3).
    mock.launch("A2025000000001")  # only launched requests have launch data
    r = http.request("GET", mock.url + f"/launchdata?requestId=A2025000000001&sessionToken={mock.session_token}?appId=viewer")
    assert r.status == 200, r.data
    data = json.loads(r.data)
    assert data["callbackInfo"]["url"] == mock.url
    assert {sl["id"] for b in data["blocks"] for sl in b["slides"]} == {"slide-001", "slide-002", "slide-003"}
    bad = http.request("GET", mock.url + "/launchdata?requestId=A2025000000001&sessionToken=wrong?appId=viewer")
    assert bad.status == 401  # tolerant about the shape, not about the session


def test_check_app_without_info_warns_and_goes_on(mock: MockSectraServer) -> None:
    # Sectra's basic example app has a registration and a create handler but no /info route.
    callback: dict[str, str] = {}

    class App(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/basic":
                self.reply(200, {"applicationId": "basic", "displayName": "Basic", "manufacturer": "Demo",
                                 "url": f"http://{self.headers['Host']}/basic", "inputTemplate": {"type": "wholeSlide"},
                                 "context": {"gallery": False}})
            else:
                self.reply(404, {"error": "no such route"})

        def do_POST(self) -> None:
            inv = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            callback.update(inv["callbackInfo"])
            result = {"slideId": inv["slideId"], "displayResult": "ANSWER: 42", "applicationVersion": "0.1.0",
                      "data": {"context": None, "result": {"type": "primitive", "content": {"labels": [{"location": P, "label": "42"}]}}}}
            stored = http.request("POST", callback["url"] + "/applications/basic/results/", body=json.dumps(result).encode(),
                                  headers={"Authorization": f"Bearer {callback['token']}", "Content-Type": "application/json"})
            self.reply(200, json.loads(stored.data))

    app = ThreadingHTTPServer(("127.0.0.1", 0), App)
    threading.Thread(target=app.serve_forever, args=(POLL_INTERVAL,), daemon=True).start()
    try:
        report = mock.check_app(f"http://127.0.0.1:{app.server_address[1]}/basic", slide_id="slide-001")
    finally:
        app.shutdown()
        app.server_close()
    assert report.ok, report.problems
    assert report.info is None and len(report.warnings) == 1 and "/info" in report.warnings[0]
    assert report.answer is not None and report.answer.display_result == "ANSWER: 42"
