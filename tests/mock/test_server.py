"""The mock server's own behaviour, checked with raw HTTP so client leniency cannot hide mistakes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
import urllib3

from sectra_core import schemas as s
from sectra_core.errors import DecodeError, HTTPStatusError
from sectra_core.multipart import files_decoder
from sectra_mock import MockSectraServer
from tests.conftest import TOKEN
from tests.mock.conftest import App

AUTH = {"Authorization": f"Bearer {TOKEN}"}
http = urllib3.PoolManager()


def get(server: MockSectraServer, path: str, headers: dict[str, str] | None = None) -> urllib3.BaseHTTPResponse:
    return http.request("GET", server.url + path, headers=AUTH if headers is None else headers)


def send(server: MockSectraServer, method: str, path: str, body: object) -> urllib3.BaseHTTPResponse:
    return http.request(method, server.url + path, body=json.dumps(body).encode(),
                        headers={**AUTH, "Content-Type": "application/json"})


def test_every_endpoint_wants_the_bearer_token(mock: MockSectraServer) -> None:
    for path in ["/info", "/slides/x/info", "/slides/x/files", "/slides/x/label", "/applications/a/results/1",
                 "/images/x_files/0/0_0.jpg", "/requests/A/images/info"]:
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}]:
            r = get(mock, path, headers)
            assert r.status == 401 and json.loads(r.data)["error"], (path, headers)


def test_unknown_routes_are_json_404(mock: MockSectraServer) -> None:
    r = get(mock, "/hooks/x/results")
    assert r.status == 404 and r.headers["Content-Type"] == "application/json"


def test_unknown_fields_are_warnings_by_default_and_400_when_strict(mock: MockSectraServer, make_mock: Callable[..., MockSectraServer]) -> None:
    good = {"slideId": "s", "displayResult": "x", "applicationVersion": "1.0",
            "data": {"result": {"type": "primitive", "content": []}}}
    assert send(mock, "POST", "/applications/a/results", good).status == 201
    assert mock.warnings == []
    # The misspelling Sectra's basic example sends (spec §5.6): real servers evidently accept it.
    typo = {**good, "resultVersion": "1.0"}
    r = send(mock, "POST", "/applications/a/results", typo)
    assert r.status == 201
    assert mock.warnings == ["POST /applications/a/results: unknown fields accepted: $.resultVersion"]
    r = send(mock, "POST", "/applications/a/results", {"displayResult": "no slide"})
    assert r.status == 400 and "slideId" in json.loads(r.data)["error"]  # a missing field stays a 400
    strict = make_mock(strict=True)
    r = send(strict, "POST", "/applications/a/results", typo)
    assert r.status == 400 and "resultVersion" in json.loads(r.data)["error"] and strict.warnings == []
    assert send(make_mock(strict=True, strict_bodies=False), "POST", "/applications/a/results", typo).status == 201


def test_update_accepts_all_known_body_shapes(mock: MockSectraServer) -> None:
    created = json.loads(send(mock, "POST", "/applications/a/results", {"slideId": "s"}).data)
    plain = send(mock, "PUT", "/applications/a/results/1", {"slideId": "s", "displayResult": "no version"})
    assert plain.status == 200  # contrib and the downloader send no versionId (spec §4.13)
    assert send(mock, "PUT", "/applications/a/results/1", {**created, "displayResult": "stale"}).status == 409
    current = json.loads(get(mock, "/applications/a/results/1").data)
    r = send(mock, "PUT", "/applications/a/results/1", {**current, "displayResult": "full"})
    assert r.status == 200 and json.loads(r.data)["versionId"] != current["versionId"]
    assert send(mock, "PUT", "/applications/a/results/1", {**current, "id": 2}).status in (400, 409)


def test_scope_and_phi_filtering_accepts_python_true(mock: MockSectraServer) -> None:
    basic = json.loads(get(mock, "/slides/s/info").data)
    full = json.loads(get(mock, "/slides/s/info?scope=extended&includePHI=True").data)
    assert "accessionNumber" not in basic and "stationName" not in basic
    assert basic["qualityControl"]["status"] == "NotSet"  # both scopes: contrib reads it from basic
    assert full["accessionNumber"] and full["stationName"] and full["qualityControl"]["status"] == "NotSet"
    assert basic["focalPlanes"] == [{"id": "0", "offsetUm": 0.0}]  # fields other clients require


def test_multipart_framing_is_exactly_sectras(mock: MockSectraServer) -> None:
    parts = mock.add_synthetic_slide("m", size_bytes=10, n_files=2)
    r = get(mock, "/slides/m/files")
    ctype = r.headers["Content-Type"]
    assert ctype.startswith("multipart/related; boundary=")
    b = ctype.split("boundary=")[1]
    expected = b""
    for p in parts:
        expected += (f'--{b}\r\nContent-Disposition: attachment; filename="{p.name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n").encode()
        expected += b"".join(p.chunks()) + b"\r\n"
    expected += f"--{b}--\r\n".encode()
    assert r.data == expected and int(r.headers["Content-Length"]) == len(expected)


def test_single_file_shape(mock: MockSectraServer) -> None:
    mock.add_synthetic_slide("one", size_bytes=1234, n_files=1)
    r = get(mock, "/slides/one/files")
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-Disposition"] == 'attachment; filename="i0000,0000b.dcm"'
    assert len(r.data) == 1234 == int(r.headers["Content-Length"])
    assert files_decoder({k.lower(): v for k, v in r.headers.items()}).parts == 1


@pytest.mark.parametrize("version, info, missing", [
    ("3.4", "1.8", ["/requests/A/images/info", "/slides/x/request/images/info"]),
    ("1.9", "1.9", []),
    ("1.10", "1.10", []),
])
def test_versions_answer_info_and_gate_endpoints(make_mock: Callable[..., MockSectraServer], version: str, info: str, missing: list[str]) -> None:
    server = make_mock(api_version=version)
    assert json.loads(get(server, "/info").data)["apiVersion"] == info
    for path in missing:
        assert get(server, path).status == 404
    qc = {"applicationVersion": "1", "qualityControl": {"status": "QualityOk", "versionId": "x"}}
    expected_qc = 409 if version == "1.10" else 404  # only 1.10 has quality control; "x" is stale
    assert send(server, "PUT", "/slides/s/qualityControl", qc).status == expected_qc


def test_token_login(make_mock: Callable[..., MockSectraServer]) -> None:
    server = make_mock(users={"user": "pass"})
    basic = {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode()}
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    r = http.request("POST", server.url + "/token?applicationId=app", body=b"grant_type=client_credentials", headers={**basic, **form})
    issued = json.loads(r.data)
    assert r.status == 200 and issued["token_type"] == "Bearer" and issued["expires_in"] == 3600
    assert get(server, "/info", {"Authorization": "Bearer " + issued["access_token"]}).status == 200
    server.revoke_tokens()
    assert get(server, "/info", {"Authorization": "Bearer " + issued["access_token"]}).status == 401
    bad = {"Authorization": "Basic " + base64.b64encode(b"user:nope").decode()}
    assert http.request("POST", server.url + "/token?applicationId=app", body=b"grant_type=client_credentials", headers={**bad, **form}).status == 401


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def test_issued_tokens_expire_by_the_injected_clock(make_mock: Callable[..., MockSectraServer]) -> None:
    clock = FakeClock()
    server = make_mock(users={"user": "pass"}, token_lifetime=60, clock=clock)
    basic = {"Authorization": "Basic " + base64.b64encode(b"user:pass").decode(),
             "Content-Type": "application/x-www-form-urlencoded"}
    r = http.request("POST", server.url + "/token?applicationId=app", body=b"grant_type=client_credentials", headers=basic)
    bearer = {"Authorization": "Bearer " + json.loads(r.data)["access_token"]}
    clock.now += 59.9
    assert get(server, "/info", bearer).status == 200
    clock.now += 0.2  # past the 60 s lifetime: no sleeping, the mock's clock says so
    assert get(server, "/info", bearer).status == 401
    assert get(server, "/info").status == 200  # the operator's token never expires


def test_a_client_logs_in_again_when_the_mocks_clock_expires_its_token(make_mock: Callable[..., MockSectraServer]) -> None:
    from sectra_client import SectraClient

    clock = FakeClock()
    server = make_mock(users={"user": "pass"}, token_lifetime=3600, clock=clock)
    with SectraClient.from_credentials(server.url, "user", "pass", "my-app") as client:
        client.get_image_metadata("s")
        clock.now += 3601  # the client's own clock still trusts the token: the mock answers 401
        assert client.get_image_metadata("s").id == "s"  # refreshed once after the 401
    assert server.logins == 2


def test_launch_data(mock: MockSectraServer) -> None:
    acc = mock.image_info("s1").accession_number
    launch_url = mock.launch(acc)  # as IDS7 opens an external app (spec §4.3)
    r = get(mock, launch_url.removeprefix(mock.url) + "&appId=a", headers={})
    data = msgspec_decode(r.data, s.LaunchResponse)
    assert data.callback_info.url == mock.url and data.blocks[0].slides[0].id == "s1"
    assert data.callback_info.token == mock.app_token("a")
    assert get(mock, f"/launchdata?requestId={acc}&sessionToken=wrong&appId=a", headers={}).status == 401


def msgspec_decode(raw: bytes, type_: type) -> object:
    import msgspec

    return msgspec.json.decode(raw, type=type_)


def test_attachments_with_range(mock: MockSectraServer) -> None:
    mock.add_attachment("a", 1, "report.pdf", b"0123456789")
    path = "/applications/a/results/1/attachments?name=report.pdf"
    assert get(mock, path).data == b"0123456789"
    r = get(mock, path, {**AUTH, "Range": "bytes=2-5"})
    assert r.status == 206 and r.data == b"2345" and r.headers["Content-Range"] == "bytes 2-5/10"
    assert get(mock, path, {**AUTH, "Range": "bytes=-3"}).data == b"789"
    assert get(mock, path, {**AUTH, "Range": "bytes=50-"}).status == 416
    assert get(mock, "/applications/a/results/1/attachments?name=nope").status == 404


def test_trigger_builds_a_realistic_create(mock: MockSectraServer, app_factory: Callable[[int, bytes], App]) -> None:
    stored = s.ResultResponse(id=1, version_id="v", slide_id="slide-001")
    app = app_factory(200, s.encode(stored))
    answer = mock.trigger(webhook_url=app.url, application_id="my-app", slide_id="slide-001")
    assert answer == stored
    sent = app.received[0]
    assert sent["action"] == "create" and sent["input"] == {"type": "wholeSlide"}
    assert sent["callbackInfo"] == {"url": mock.url, "token": mock.app_token("my-app")} and sent["cancellationToken"]
    tagged = s.TaggedPolygonInput(content=s.TaggedPolygonContent(
        polygon=s.Polygon(points=[s.Point(x=0, y=0), s.Point(x=0.1, y=0), s.Point(x=0.1, y=0.1)]), tags=["T"], tag_index=0))
    mock.trigger(webhook_url=app.url, application_id="my-app", slide_id="slide-001", input=tagged)
    assert app.received[1]["input"]["content"]["tagIndex"] == 0


def test_trigger_reports_wrong_answers(mock: MockSectraServer, app_factory: Callable[[int, bytes], App]) -> None:
    with pytest.raises(DecodeError, match="wrong shape"):
        mock.trigger(webhook_url=app_factory(200, b'{"no": "id"}').url, application_id="a", slide_id="s")
    with pytest.raises(HTTPStatusError, match="500"):
        mock.trigger(webhook_url=app_factory(500, b"boom").url, application_id="a", slide_id="s")


def test_callback_host_for_apps_in_containers(make_mock) -> None:  # type: ignore[no-untyped-def]
    server = make_mock(callback_host="host.docker.internal")
    info = server.build_create("app", "slide-1").callback_info
    assert info.url == f"http://host.docker.internal:{server.port}" and info.token == server.app_token("app")
