"""``sectra schema export``: the published JSON Schemas accept what the mock really sends and stores,
and the spec's complete invocation examples; they refuse a malformed message."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest

jsonschema = pytest.importorskip("jsonschema")

from sectra_client import SectraClient  # noqa: E402
from sectra_client.cli import main  # noqa: E402
from sectra_client.mock_server import MockSectraServer  # noqa: E402
from sectra_core.schemas.results import Result  # noqa: E402

SPEC = Path("/work/shared/spec/ia-api.md")


def _load(directory: Path) -> dict[str, Any]:
    return {p.name.removesuffix(".schema.json"): json.loads(p.read_text()) for p in directory.glob("*.schema.json")}


def _validate(schema: dict[str, Any], instance: Any) -> None:
    jsonschema.Draft202012Validator(schema).validate(instance)


@pytest.fixture
def schemas(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "schemas"
    assert main(["schema", "export", str(out)]) == 0
    docs = _load(out)
    assert {"registration", "invocation", "result", "image-info"} <= set(docs)
    for doc in docs.values():
        jsonschema.Draft202012Validator.check_schema(doc)
    return docs


def test_mock_image_info_and_stored_results_match(schemas: dict[str, Any]) -> None:
    server = MockSectraServer(token="dev-token")
    with server.run(port=0):
        req = urllib.request.Request(f"{server.url}/slides/slide-001/info",
                                     headers={"Authorization": "Bearer dev-token"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            _validate(schemas["image-info"], json.loads(resp.read()))
        with SectraClient(url=server.url, token="dev-token") as client:
            client.create_results("demo-app", Result(slide_id="slide-001"))
        stored = server.state.results_on_slide("slide-001")
    assert stored
    for results in stored.values():
        for r in results:
            _validate(schemas["result-response"], json.loads(msgspec.json.encode(r)))


def test_spec_invocation_examples_match(schemas: dict[str, Any]) -> None:
    if not SPEC.exists():
        pytest.skip(f"the spec is not at {SPEC}")
    blocks = re.findall(r"```json\n(.*?)```", SPEC.read_text(), re.S)
    checked = 0
    for block in blocks:
        try:
            doc = json.loads(block)
        except ValueError:
            continue  # an excerpt, not a complete message
        if isinstance(doc, dict) and doc.get("action") in {"create", "modify", "cancel", "delete"}:
            _validate(schemas["invocation"], doc)
            checked += 1
    assert checked >= 2


def test_schema_refuses_a_malformed_invocation(schemas: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        _validate(schemas["invocation"], {"action": "create", "slideId": 42})


def test_the_invocation_the_mock_sends_matches(schemas: dict[str, Any]) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sectra_client import encode

    bodies: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            bodies.append(raw)
            inv = json.loads(raw)
            with SectraClient(url=inv["callbackInfo"]["url"], token=inv["callbackInfo"]["token"]) as c:
                body = encode(c.create_results(inv["applicationId"], Result(slide_id=inv["slideId"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    app = ThreadingHTTPServer(("localhost", 0), Hook)
    threading.Thread(target=app.serve_forever, args=(0.05,), daemon=True).start()
    try:
        server = MockSectraServer(token="dev-token")
        with server.run(port=0):
            server.trigger(webhook_url=f"http://localhost:{app.server_address[1]}/hook",
                           application_id="my-app", slide_id="slide-001")
    finally:
        app.shutdown()
        app.server_close()
    assert bodies
    for body in bodies:
        doc = json.loads(body)
        assert doc["action"] == "create"
        _validate(schemas["invocation"], doc)
