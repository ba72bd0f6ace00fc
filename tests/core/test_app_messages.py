"""The app side's pure functions: answer shapes, error bodies, registration checks, answer decoding."""

from __future__ import annotations

import pytest

from sectra_core import schemas as s
from sectra_core.app import messages as w
from sectra_core.app.declaration import AnalysisApp
from sectra_core.errors import ConfigurationError, DecodeError, NotFoundError, ServerError, ValidationError
from sectra_core.http import HttpResponse

STORED = s.ResultResponse(id=7, version_id="v1", slide_id="s")


def test_answers_have_sectras_shapes() -> None:
    assert w.encode_answer("create", STORED).startswith(b"{") and b'"id":7' in w.encode_answer("modify", STORED)
    assert w.encode_answer("cancel", None) == b"[]"
    assert w.encode_answer("delete", None) == w.encode_answer("notification", {}) == b"{}"
    with pytest.raises(ValidationError, match="stored"):
        w.encode_answer("create", STORED.as_result())
    with pytest.raises(ValidationError, match="ResultResponse"):
        w.encode_answer("create", {"id": 1})
    with pytest.raises(ValidationError, match="always"):
        w.encode_answer("delete", "yes")


def test_error_bodies_never_quote_foreign_exceptions() -> None:
    status, body = w.error_answer(ValueError("Jane Doe"))
    assert status == 500 and b"Jane" not in body and b"ValueError" in body
    assert w.error_answer(DecodeError("bad json"), parsing=True)[0] == 400
    assert w.error_answer(ValidationError("polygon"))[0] == 500


def test_upstream_failures_get_one_answer_that_quotes_nothing() -> None:
    """Issue #12 holes 3 and 6: the 502 neither relays the callback server's body nor tells one
    failure kind from another (which would let a caller port-scan through the app)."""
    from sectra_core.errors import ConnectError, ResponseTooLargeError, TimeoutError, UntrustedOriginError

    upstream = [
        NotFoundError(404, "GET", "/slides/x/info", b"patient Jane Doe 19121212-1212"),
        ServerError(503, "GET", "/info", b"<html>internal admin console</html>"),
        ConnectError("could not connect to 10.0.0.7:5432: refused"),
        TimeoutError("read timed out after 30 s"),
        DecodeError("$.imageSize: expected object, got 'Jane Doe'"),  # a reply that did not decode
        ResponseTooLargeError("the answer is larger than 64 MiB"),
    ]
    answers = {w.error_answer(exc) for exc in upstream}
    assert answers == {(502, s.encode({"error": w.UPSTREAM_FAILED}))}
    assert w.error_answer(UntrustedOriginError("the callback origin http://10.0.0.7:5432 ..."))[0] == 403
    assert b"10.0.0.7" not in w.error_answer(UntrustedOriginError("http://10.0.0.7:5432"))[1]
    # and the log line names the kind and status, not what the other side said
    for exc in upstream:
        summary = w.failure_summary(exc)
        assert "Jane" not in summary and "admin console" not in summary and type(exc).__name__ in summary
    assert "HTTP 404 answering GET" in w.failure_summary(upstream[0])


def test_decode_answer() -> None:
    assert w.decode_answer("create", HttpResponse(200, {}, s.encode(STORED))) == STORED
    assert w.decode_answer("cancel", HttpResponse(200, {}, b"[]")) == []
    with pytest.raises(DecodeError, match="wrong shape.*stored result"):
        w.decode_answer("create", HttpResponse(200, {}, s.encode(STORED.as_result())))
    with pytest.raises(DecodeError, match="wrong shape"):
        w.decode_answer("delete", HttpResponse(200, {}, b""))
    with pytest.raises(ServerError):
        w.decode_answer("delete", HttpResponse(503, {}, b"down"))


def test_registration_echo_and_checks() -> None:
    app = AnalysisApp(application_id="a", display_name="A", manufacturer="M", input_type="taggedPolygon", tags=["T"])
    body = w.registration_answer(app.registration, "http://host:5006/ia/a")
    reg = s.decode(s.decoder(s.Registration), body, "registration")
    assert reg.url == "http://host:5006/ia/a" and reg.input_template.content.tags == ["T"]  # type: ignore[union-attr]
    assert w.check_registration(reg, "http://host:5006/ia/a/", body) == []
    problems = w.check_registration(reg, "http://other/", body)
    assert len(problems) == 1 and "echo" in problems[0]
    import msgspec

    big = msgspec.json.encode({**msgspec.json.decode(body), "context": {"k": "x" * 5000}})
    assert any("4 KiB" in p for p in w.check_registration(reg, reg.url, big))
    odd = s.Registration(application_id="a", display_name="A", manufacturer="M", url="u",
                         input_template=s.InputTemplate(type="wholeSlides"))
    assert any("inputTemplate.type" in p for p in w.check_registration(odd, "u"))
    assert w.notification_url("http://h/app/") == "http://h/app/imagenotification"


def test_app_declaration() -> None:
    with pytest.raises(ConfigurationError, match="application_id"):
        AnalysisApp(application_id="a")
    with pytest.raises(ConfigurationError, match="taggedPolygon"):
        AnalysisApp(application_id="a", display_name="A", manufacturer="M", tags=["T"])
    app = AnalysisApp(application_id="a", display_name="A", manufacturer="M", app_version="9", api_version="1.9")
    assert app.response_headers() == {"X-Sectra-ApiVersion": "1.9", "X-Sectra-SoftwareVersion": "9"}

    @app.on_cancel
    def cancel(ctx: object) -> None: ...

    assert app.handler("cancel") is cancel and not app.is_async("cancel") and app.handler("create") is None
    assert "cancel" in repr(app)
