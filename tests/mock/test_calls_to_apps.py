"""The mock's calls to an app (trigger, modify, cancel, delete, notify, check_app): one layer, written once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sectra_core import schemas as s
from sectra_mock import MockSectraServer
from sectra_mock.caller import AppCaller, AsyncAppCaller

CALLS = ("trigger", "modify", "cancel", "delete", "notify", "check_app")


@pytest.mark.parametrize("name", CALLS)
def test_each_call_is_defined_once_and_the_server_is_the_caller(name: str) -> None:
    """No pass-through: the server's method is the caller's own (issue #13), the trio one its twin."""
    assert name not in vars(MockSectraServer)
    assert getattr(MockSectraServer, name) is getattr(AppCaller, name)
    assert name in vars(AppCaller) and name in vars(AsyncAppCaller)


@pytest.fixture
def recording_app() -> Iterator[tuple[str, list[dict[str, object]]]]:
    """A plain HTTP app on loopback that records what the mock POSTs and answers as Sectra expects."""
    seen: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            answer = b"[]" if body.get("action") == "cancel" else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    app = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{app.server_address[1]}/hook", seen
    finally:
        app.shutdown()
        app.server_close()


def test_blocking_calls_take_what_the_trio_ones_take(recording_app: tuple[str, list[dict[str, object]]]) -> None:
    """``server.cancel/delete/notify(..., context=, timeout=)`` as on ``server.aio`` (the same code now)."""
    url, seen = recording_app
    stored = s.ResultResponse(id=7, slide_id="slide-001", version_id="v1")
    with MockSectraServer(token="t").run() as mock:
        assert mock.cancel(url, application_id="app", slide_id="slide-001", cancellation_token="c", context={"n": 1}, timeout=5) == []
        assert mock.delete(url, stored, application_id="app", context={"n": 2}, timeout=5) == {}
        assert mock.notify(url, "slide-001", "app", context={"n": 3}, timeout=5) == {}
    assert [(m["action"], m["context"]) for m in seen] == [("cancel", {"n": 1}), ("delete", {"n": 2}), ("newImageFiles", {"n": 3})]


def test_modify_and_delete_carry_primitive_content_in_the_shape_stored() -> None:
    """One object stays one object in the invocation's ``input`` (Sectra's basic example app reads
    it so, issue 24); a list stays a list; the trio caller does the same."""
    import trio
    import urllib3

    seen: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            answer = json.dumps(body["input"]).encode() if body.get("action") == "modify" else b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    app = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{app.server_address[1]}/hook"
    point = {"x": 0.1, "y": 0.1}
    item = {"labels": [{"location": point, "label": "ANSWER: 42"}]}
    try:
        with MockSectraServer(token="t").run() as mock:
            ids = []
            for content in (item, [item]):
                body = {"slideId": "slide-001", "displayResult": "42",
                        "data": {"context": {}, "result": {"type": "primitive", "content": content}}}
                r = urllib3.request("POST", mock.url + "/applications/app/results", json=body,
                                    headers={"Authorization": "Bearer t"})
                assert r.status == 201
                ids.append(r.json()["id"])
            single, listed = (next(x for x in mock.get_results("app", "slide-001") if x.id == i) for i in ids)
            mock.modify(url, single, application_id="app", timeout=5)
            mock.delete(url, single, application_id="app", timeout=5)
            mock.modify(url, listed, application_id="app", timeout=5)
            mock.delete(url, listed, application_id="app", timeout=5)

            async def on_trio() -> None:
                await mock.aio.modify(url, single, application_id="app", timeout=5)
                await mock.aio.delete(url, single, application_id="app", timeout=5)
                # A delete the test built itself, sent through trigger(invocation=): shaped alike.
                await mock.aio.trigger(url, invocation=s.DeleteInvocation(
                    application_id="app", slide_id="slide-001", callback_info=mock.callback_info("app"), input=single))

            trio.run(on_trio)
    finally:
        app.shutdown()
        app.server_close()
    shapes = [(m["action"], m["input"]["data"]["result"]["content"]) for m in seen]  # type: ignore[index]
    assert shapes == [("modify", item), ("delete", item), ("modify", [item]), ("delete", [item]),
                      ("modify", item), ("delete", item), ("delete", item)]
