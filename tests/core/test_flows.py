"""Flows driven by hand with canned responses: negotiation, gating, status errors, headers. No sockets."""

from __future__ import annotations

import json
import logging

import pytest

from sectra_core.retry import NO_RETRY

from sectra_core import operations
from sectra_core import schemas as s
from sectra_core.errors import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    DecodeError,
    HTTPStatusError,
    NotFoundError,
    ServerError,
    UnsupportedFeatureError,
)
from sectra_core.http import HttpResponse
from sectra_core.plugins import make_plugins
from sectra_core.flows import ClientState, call, negotiate
from sectra_core.urls import is_loopback, normalize_base_url

SECRET = "tok-SECRET-123"
PLUGINS = make_plugins(entry_points=False)


def state(**kw: object) -> ClientState:
    kw.setdefault("retry", NO_RETRY)  # retries have their own tests (test_retry.py)
    return ClientState("https://pacs.example/ia/v1/", SECRET, plugins=PLUGINS, **kw)  # type: ignore[arg-type]


def info(version: str) -> HttpResponse:
    return HttpResponse(200, {"content-type": "application/json"},
                        json.dumps({"apiVersion": version, "softwareVersion": "x"}).encode())


def test_negotiation_reads_info_once_and_picks_by_version() -> None:
    for version, name in [("1.10", "v5.0"), ("1.9", "v5.0"), ("1.8", "v3.4"), ("1.5", "v3.4"), ("2.0", "v5.0")]:
        st = state()
        flow = negotiate(st)
        request = next(flow)
        assert request.method == "GET" and request.url == "https://pacs.example/ia/v1/info"
        assert request.headers["Authorization"] == f"Bearer {SECRET}"
        with pytest.raises(StopIteration) as done:
            flow.send(info(version))
        assert done.value.value.name == name
        with pytest.raises(StopIteration):  # cached: no second request
            next(negotiate(st))


def test_pinned_version_sends_nothing() -> None:
    st = state(api_version="3.4")
    with pytest.raises(StopIteration) as done:
        next(negotiate(st))
    assert done.value.value.name == "v3.4"


def test_wrong_token_fails_at_negotiation_and_unreadable_info_falls_back() -> None:
    flow = negotiate(state())
    next(flow)
    with pytest.raises(AuthenticationError):
        flow.send(HttpResponse(401, {}, b"nope"))
    st = state()
    flow = negotiate(st)
    next(flow)
    with pytest.raises(StopIteration) as done:
        flow.send(HttpResponse(404, {}, b""))
    assert done.value.value.name == "v5.0"


def run(st: ClientState, op: object, response: HttpResponse) -> object:
    flow = call(st, op)  # type: ignore[arg-type]
    request = next(flow)
    try:
        flow.send(response)
    except StopIteration as done:
        return request, done.value
    raise AssertionError("flow did not finish")


def test_request_shape_and_decoding() -> None:
    st = state(api_version="5.0", app_version="2.3.1")
    slide = {"id": "a/b", "isStreamable": True, "imageSize": {"width": 4, "height": 2}, "tileSize": {"width": 1, "height": 1}}
    request, value = run(st, operations.get_image_metadata("a/b", extended=True, phi=True),
                         HttpResponse(200, {}, json.dumps(slide).encode()))
    assert request.url == "https://pacs.example/ia/v1/slides/a%2Fb/info?scope=extended&includePHI=true"
    assert request.headers["X-Sectra-ApiVersion"] == "1.10"
    assert request.headers["X-Sectra-SoftwareVersion"] == "2.3.1"
    assert isinstance(value, s.ImageInfo) and value.max_y == 0.5
    assert SECRET not in repr(request) and "scope" not in repr(request)


def test_slide_files_are_asked_for_byte_for_byte() -> None:
    request, _ = run(state(api_version="5.0"), operations.get_slide_files("s1"), HttpResponse(200, {}, b""))
    assert request.stream and request.headers["Accept-Encoding"] == "identity"
    request, _ = run(state(api_version="5.0"), operations.get_label_image("s1"), HttpResponse(204, {}, b""))
    assert "Accept-Encoding" not in request.headers  # only the file stream asks


def test_issuer_uses_newest_spelling() -> None:
    request, _ = run(state(api_version="5.0"), operations.get_image_infos_in_case("A1", accession_number_issuer_id="LAB"),
                     HttpResponse(200, {}, b"[]"))
    assert request.url.endswith("/requests/A1/images/info?accessionNumberIssuer=LAB")


def test_version_header_follows_an_older_server() -> None:
    st = state()
    flow = negotiate(st)
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(info("1.9"))
    request, _ = run(st, operations.get_info(), info("1.9"))
    assert request.headers["X-Sectra-ApiVersion"] == "1.9"


def test_unsupported_features_raise_before_sending() -> None:
    st = state(api_version="3.4")
    qc = s.QualityControl(application_version="1", quality_control=s.QualityControlData(version_id="v"))
    for op, minimum in [(operations.get_image_infos_in_case("A"), "1.9"), (operations.set_quality_control("s", qc), "1.10")]:
        with pytest.raises(UnsupportedFeatureError) as err:
            next(call(st, op))
        assert err.value.minimum == minimum and op.name in str(err.value)
    # A 1.9 server has case lists but not quality control, even through the v5.0 adapter.
    st = state()
    flow = negotiate(st)
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(info("1.9"))
    next(call(st, operations.get_image_infos_in_case("A")))
    with pytest.raises(UnsupportedFeatureError, match="1.10"):
        next(call(st, operations.set_quality_control("s", qc)))


@pytest.mark.parametrize("status, exc", [(401, AuthenticationError), (403, AuthenticationError),
                                         (404, NotFoundError), (409, ConflictError), (500, ServerError),
                                         (418, HTTPStatusError)])
def test_status_errors(status: int, exc: type[Exception]) -> None:
    with pytest.raises(exc) as err:
        run(state(api_version="5.0"), operations.get_result_by_result_id("app", 7),
            HttpResponse(status, {}, b'{"error": "boom"}\n\n' + b"x" * 1000))
    message = str(err.value)
    # The route, never the path (ids, accession numbers); the body only on request (it may hold PHI).
    assert f"HTTP {status}" in message and "/applications/{app_id}/results/{result_id}" in message
    assert "/results/7" not in message and "boom" not in message and "withheld" in message
    assert "boom" in err.value.body_excerpt  # type: ignore[attr-defined]
    assert len(message) < 400 and SECRET not in message


def test_malformed_and_wrong_shaped_json() -> None:
    with pytest.raises(DecodeError, match="malformed JSON"):
        run(state(api_version="5.0"), operations.get_info(), HttpResponse(200, {}, b"{oops"))
    with pytest.raises(DecodeError, match=r"\$\.apiVersion"):
        run(state(api_version="5.0"), operations.get_info(), HttpResponse(200, {}, b'{"apiVersion": 1, "softwareVersion": "x"}'))


def test_label_204_is_none() -> None:
    _, value = run(state(api_version="5.0"), operations.get_label_image("s"), HttpResponse(204, {}, b""))
    assert value is None
    _, value = run(state(api_version="5.0"), operations.get_label_image("s"),
                   HttpResponse(200, {"content-type": "image/jpeg"}, b"\xff\xd8"))
    assert value == s.LabelImage(data=b"\xff\xd8", content_type="image/jpeg")


def test_update_sends_id_and_version() -> None:
    stored = s.ResultResponse(id=5, version_id="v1", slide_id="s")
    request, _ = run(state(api_version="5.0"), operations.update_results("app", 5, stored),
                     HttpResponse(200, {}, s.encode(stored)))
    body = json.loads(request.body)
    assert body["id"] == 5 and body["versionId"] == "v1" and request.method == "PUT"
    plain = s.Result(slide_id="s")
    request, _ = run(state(api_version="5.0"), operations.update_results("app", 5, plain), HttpResponse(200, {}, s.encode(stored)))
    assert "versionId" not in json.loads(request.body)


@pytest.mark.parametrize("url, expected", [
    ("https://pacs/ia/v1/", "https://pacs/ia/v1"),
    ("http://localhost:8001", "http://localhost:8001"),
    ("localhost:8001", "http://localhost:8001"),
    ("127.0.0.5:9", "http://127.0.0.5:9"),
    ("[::1]:80/x", "http://[::1]:80/x"),
    ("pacs.example/ia", "https://pacs.example/ia"),
    ("http://pacs.example/ia", "https://pacs.example/ia"),
    ("  HTTPS://Pacs/ia  ", "https://Pacs/ia"),
])
def test_url_normalisation(url: str, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert normalize_base_url(url) == expected


def test_plain_http_needs_opt_in_and_bad_urls_are_refused() -> None:
    assert normalize_base_url("http://pacs.example/ia", allow_http=True) == "http://pacs.example/ia"
    for bad in ["", "ftp://x", "https://", "https://u:p@host", "https://h/x?token=1"]:
        with pytest.raises(ConfigurationError):
            normalize_base_url(bad)
    assert is_loopback("app.localhost") and not is_loopback("localhost.evil.com")


def test_client_state_hides_token_and_rejects_header_injection() -> None:
    assert SECRET not in repr(state())
    with pytest.raises(ConfigurationError):
        ClientState("https://h", "a\r\nX-Evil: 1", plugins=PLUGINS)
    with pytest.raises(ConfigurationError):
        ClientState("https://h", "", plugins=PLUGINS)
    with pytest.raises(ConfigurationError, match="known"):
        ClientState("https://h", "t", plugins=PLUGINS, api_version="9.9")


def test_token_refresh_schedule() -> None:
    from sectra_core.flows import Credentials, parse_token

    st = ClientState("https://h/ia", "", plugins=PLUGINS, credentials=Credentials("u", "pw-S3CRET", "app"))
    assert st.needs_token(0.0) and "S3CRET" not in repr(st.credentials)
    st.set_token(parse_token(b'{"access_token": "a", "token_type": "Bearer", "expires_in": 3600}'), now=100.0)
    assert not st.needs_token(100.0 + 3539) and st.needs_token(100.0 + 3540)  # 60 s early
    st.set_token(parse_token(b'{"accessToken": "b", "expiresIn": 30}'), now=0.0)  # camelCase too
    assert not st.needs_token(14.9) and st.needs_token(15.0)  # half the lifetime when short
    assert st.token_generation == 2 and st.auth_headers == {"Authorization": "Bearer b"}
    with pytest.raises(DecodeError):
        parse_token(b'{"token": "x"}')


def test_login_request_shape() -> None:
    from sectra_core.flows import Credentials, login

    st = ClientState("https://h/ia", "", plugins=PLUGINS, credentials=Credentials("user", "pass", "app id"))
    flow = login(st, 0.0)
    request = next(flow)
    assert request.method == "POST" and request.url == "https://h/ia/token?applicationId=app+id"
    assert request.headers["Authorization"] == "Basic dXNlcjpwYXNz" and request.body == b"grant_type=client_credentials"
    with pytest.raises(AuthenticationError):
        flow.send(HttpResponse(401, {}, b""))
