"""Local development round trip, with no hospital system in reach.

1. Start the mock Sectra server (with a 3-file synthetic slide).
2. Serve a small analysis app, declared with the SDK's app toolkit.
3. Check the app's registration as Sectra's admin UI would, then fire a ``create`` invocation at
   it, as Sectra does when a pathologist runs the app.
4. The app reads the slide's metadata and files through ``SectraClient`` and returns a result,
   which the toolkit stores (Sectra expects the stored result as the answer).
5. Read the result back from the mock and print it.

Run: ``python examples/local_dev.py``
"""

from __future__ import annotations

import tempfile

from sectra_client import SectraClient, schemas as s
from sectra_client.app import AnalysisApp, AppServer, InvocationContext, PrimitiveBuilder, create_app
from sectra_client.mock_server import MockSectraServer
from sectra_core.io.progressbar import ProgressBar

app = AnalysisApp(
    application_id="my-app", display_name="File census", manufacturer="Example Lab", app_version="0.1.0",
)


@app.on_create
def create(ctx: InvocationContext) -> s.Result:
    """The app's work (a plain function: it gets the sync client and runs in a worker thread)."""
    client: SectraClient = ctx.client
    pyramid = ctx.pyramid()  # from /slides/{id}/info
    with tempfile.TemporaryDirectory() as tmp:
        bar = ProgressBar(label="app: ")  # redraws in place on a terminal, plain lines elsewhere
        paths = client.download_slide_files(ctx.slide_id, tmp, progress=bar)
        bar.close()
        total = sum(p.stat().st_size for p in paths)
    summary = f"{len(paths)} files, {total / 2**20:.1f} MiB"
    # A box around the central half of the slide, drawn in pixels; the builder converts to
    # Sectra's coordinates, where both axes are divided by the width (spec §2.4).
    w, h = pyramid.width, pyramid.height
    builder = PrimitiveBuilder(pyramid)
    builder.polygon_px([(w / 4, h / 4), (3 * w / 4, h / 4), (3 * w / 4, 3 * h / 4), (w / 4, 3 * h / 4)],
                       style=s.Style(stroke_style="#FFA500"))
    builder.label_px(w / 4, h / 4, summary)
    return builder.build(ctx.slide_id, summary, display_properties={"Files": len(paths), "Tile size": pyramid.tile_size})


def main() -> None:
    mock = MockSectraServer(token="dev-token")
    mock.add_synthetic_slide("slide-001", size_bytes=3 * 2**20, n_files=3)
    # The app calls back only origins it trusts (docs/app-guide.md): here, the mock just started.
    with mock.run(port=0), AppServer(create_app(app, url_prefix="/sectra/hook", trusted_callbacks=[mock.url])).run() as base:
        webhook_url = f"{base}/sectra/hook"
        print(f"mock Sectra server at {mock.url}; app webhook at {webhook_url}")
        check = mock.check_app(webhook_url)
        print(f"registration check: {'ok' if check.ok else check.problems}")
        answer = mock.trigger(webhook_url=webhook_url, application_id=app.application_id, slide_id="slide-001")
        print(f"the app answered the create invocation with result id {answer.id}")
        results = mock.get_results(app_id=app.application_id, slide_id="slide-001")
        for r in results:
            print(f"stored result {r.id} (version {r.version_id[:8]}): {r.display_result}")
            print(f"  properties: {r.display_properties}")
        assert check.ok, check.problems
        assert [r.id for r in results] == [answer.id], "the stored result must be the app's answer"


if __name__ == "__main__":
    main()
