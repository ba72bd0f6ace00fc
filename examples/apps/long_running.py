"""A whole-slide analysis that takes a while: answer at once, show progress, replace the result.

On ``create`` the app stores an "Analysis queued" result (a grey box around the whole slide) and
answers with it; a background job then walks the slide's tiles at about 8 µm per pixel, updates
that result with its progress, and finally replaces it with boxes around the tiles it found
interesting, under the same result id (apps cannot delete results). A ``cancel`` invocation for
the same ``cancellationToken`` stops the job and the result says so.

Run the demo: ``python examples/apps/long_running.py``
"""

from __future__ import annotations

import zlib

from sectra_client.app import AnalysisApp, AsyncInvocationContext, AsyncJob, PrimitiveBuilder
from sectra_core import schemas as s

app = AnalysisApp(
    application_id="whole-slide-tiles", display_name="Tissue map (whole slide)", manufacturer="Example Lab",
    app_version="2.3.0",
)


def darkness(tile: bytes) -> float:
    """Stand-in for a model: how dark a tile is, 0..1 (PNG tiles from the mock; JPEG → 0.5)."""
    if not tile.startswith(b"\x89PNG"):
        return 0.5
    start = tile.index(b"IDAT") + 4
    length = int.from_bytes(tile[start - 8:start - 4], "big")
    pixels = zlib.decompress(tile[start:start + length])
    return 1.0 - sum(pixels[1:64]) / (63 * 255)


async def analyse(job: AsyncJob) -> s.Result:
    """The background work: fetch every tile at ~8 µm/px in batches, score them, draw the dark ones."""
    pyramid = await job.pyramid()
    level = pyramid.level_for_mpp(8.0) if pyramid.microns_per_pixel else max(0, pyramid.max_level - 5)
    keys = list(pyramid.tiles(level))
    scores: dict[tuple[int, int, int], float] = {}
    batch = 64
    for start in range(0, len(keys), batch):
        tiles = await job.client.fetch_tiles(job.slide_id, keys[start:start + batch], ext="png", concurrency=8)
        scores.update({key: darkness(data) for key, data in tiles.items()})
        await job.progress(min(start + batch, len(keys)) / len(keys), "Mapping tissue")
    builder = PrimitiveBuilder(pyramid)
    dark = [key for key, score in scores.items() if score > 0.1]
    style = s.Style(stroke_style="#D62728")
    for _, col, row in dark[:500]:
        x, y, w, h = pyramid.tile_box(level, col, row)
        builder.polygon_px([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], level=level, style=style)
    text = f"Tissue in {len(dark)} of {len(keys)} tiles"
    builder.label((0.01, 0.01), text)
    return builder.build(job.slide_id, text, display_properties={"Tiles": len(keys), "Level": level})


@app.on_create
async def create(ctx: AsyncInvocationContext) -> s.ResultResponse:
    """Answer at once with the queued result; the work runs in the app's nursery."""
    return await ctx.start_job(analyse, message="Tissue map queued")


def main() -> None:
    """Serve the app and the mock, trigger, watch the result change, print the final one."""
    import time

    import msgspec

    from sectra_client.app import AppServer, create_app
    from sectra_client.mock_server import MockSectraServer

    mock = MockSectraServer(latency=0.05)  # a PACS some way off: progress becomes visible
    mock.add_slide(msgspec.structs.replace(
        mock.image_info("slide-001"), image_size=s.Size(width=160000, height=90000), tile_size=s.Size(width=256, height=256),
        microns_per_pixel=0.25,
    ))
    # The app calls back only origins it trusts (docs/app-guide.md): here, the mock just started.
    with mock.run(), AppServer(create_app(app, url_prefix="/tissue", trusted_callbacks=[mock.url])).run() as base:
        answer = mock.trigger(f"{base}/tissue", application_id=app.application_id, slide_id="slide-001")
        print(f"create answered at once: result {answer.id}: {answer.display_result}")
        seen = answer.display_result
        for _ in range(600):
            [current] = mock.get_results(app.application_id, "slide-001")
            if current.display_result != seen:
                seen = current.display_result
                print(f"  result {current.id} now: {seen}")
            if seen and seen.startswith("Tissue in"):
                break
            time.sleep(0.05)


if __name__ == "__main__":
    main()
