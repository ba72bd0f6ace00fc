"""Local development round trip, with no hospital system in reach.

1. Start the mock Sectra server (with a 3-file synthetic slide).
2. Start a small analysis app: a webhook that Sectra POSTs invocations to.
3. Fire a ``create`` invocation at the app, as Sectra does when a pathologist runs it.
4. The app reads the slide's metadata and files through ``SectraClient`` and stores a result.
5. Read the result back from the mock and print it.

Run: ``python examples/local_dev.py``
"""

from __future__ import annotations

import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sectra_client import SectraClient, schemas as s
from sectra_client.mock_server import MockSectraServer
from sectra_core.errors import SectraError
from sectra_core.progressbar import ProgressBar
from sectra_core.sansio import parse_invocation, response_headers

APP_ID = "my-app"
APP_VERSION = "0.1.0"


def analyse(invocation: s.CreateInvocation) -> s.ResultResponse:
    """The app's work: read metadata and files, store a result, return the stored result."""
    cb = invocation.callback_info
    with SectraClient(url=cb.url, token=cb.token, app_version=APP_VERSION) as client:
        info = client.get_image_metadata(invocation.slide_id, extended=True)
        with tempfile.TemporaryDirectory() as tmp:
            bar = ProgressBar(label="app: ")  # redraws in place on a terminal, plain lines elsewhere
            paths = client.download_slide_files(invocation.slide_id, tmp, progress=bar)
            bar.close()
            total = sum(p.stat().st_size for p in paths)
        # Sectra divides both axes by the image width (spec §2.4): y runs to height/width.
        max_y = info.max_y
        box = [(0.25, 0.25 * max_y), (0.75, 0.25 * max_y), (0.75, 0.75 * max_y), (0.25, 0.75 * max_y)]
        summary = f"{len(paths)} files, {total / 2**20:.1f} MiB"
        result = s.Result(
            slide_id=invocation.slide_id,
            display_result=summary,
            display_properties={"Files": len(paths), "Tile size": info.tile_size.width},
            application_version=APP_VERSION,
            data=s.ResultData(
                context={},
                result=s.PrimitiveResult(
                    content=[
                        s.PrimitiveItem(
                            style=s.Style(stroke_style="#FFA500"),
                            polygons=[s.Polygon(points=[s.Point(x=x, y=y) for x, y in box])],
                            labels=[s.Label(location=s.Point(x=0.25, y=0.25 * max_y), label=summary)],
                        )
                    ]
                ),
            ),
        )
        # Store first: Sectra expects the answer to a create to carry the stored id (spec §1.4).
        return client.create_results(invocation.application_id, result)


class Webhook(BaseHTTPRequestHandler):
    """The app's HTTP side: decode the invocation, answer in the shape Sectra expects (spec §3)."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            invocation = parse_invocation(dict(self.headers), body)
            if isinstance(invocation, s.CreateInvocation):
                answer = s.encode(analyse(invocation))
            elif isinstance(invocation, s.CancelInvocation):
                answer = b"[]"
            else:
                answer = b"{}"
            status = 200
        except SectraError as exc:
            answer, status = s.encode({"error": str(exc)}), 500
        self.send_response(status)
        for name, value in response_headers("1.10", APP_VERSION).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:  # keep the output readable
        pass


def main() -> None:
    server = MockSectraServer(token="dev-token")
    server.add_synthetic_slide("slide-001", size_bytes=3 * 2**20, n_files=3)
    app = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    webhook_url = f"http://127.0.0.1:{app.server_address[1]}/sectra/hook"
    try:
        with server.run(port=0):
            print(f"mock Sectra server at {server.url}; app webhook at {webhook_url}")
            answer = server.trigger(webhook_url=webhook_url, application_id=APP_ID, slide_id="slide-001")
            print(f"the app answered the create invocation with result id {answer.id}")
            results = server.get_results(app_id=APP_ID, slide_id="slide-001")
            for r in results:
                print(f"stored result {r.id} (version {r.version_id[:8]}): {r.display_result}")
                print(f"  properties: {r.display_properties}")
            assert [r.id for r in results] == [answer.id], "the stored result must be the app's answer"
    finally:
        app.shutdown()
        app.server_close()


if __name__ == "__main__":
    main()
