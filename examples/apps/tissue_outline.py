"""Whole-slide app: read the slide at a fixed µm/px through ``open_slide``, threshold, post the outline.

Pixels in, shapes out (docs/pixels.md): ``read_region_mpp`` gives the whole slide at
``ANALYSIS_MPP`` µm/px however the slide was scanned, a saturation/brightness threshold finds the
tissue (stained tissue is coloured, glass is near-white), and ``mask_result`` traces the mask with
OpenCV, simplifies it with shapely and hands the outlines to the ``PrimitiveBuilder``, which
width-normalises them (spec §2.4) and checks they lie on the slide.

Run the demo: ``python examples/apps/tissue_outline.py`` (needs ``sectra-sdk[app,shapes]``).
"""

from __future__ import annotations

from typing import Any

from sectra_client.app import AnalysisApp, AsyncInvocationContext
from sectra_core import schemas as s
from sectra_core.shapes.masks import mask_result

app = AnalysisApp(
    application_id="tissue-outline", display_name="Tissue outline", manufacturer="Example Lab", app_version="1.0.0",
)

#: The resolution the "model" works at: 8 µm/px (a 20x scan at 0.5 µm/px is read 16x smaller).
ANALYSIS_MPP = 8.0
#: A pixel is tissue when its colour is this saturated (0..255, HSV-style max - min) ...
MIN_SATURATION = 25
#: ... and it is darker than near-white glass.
MAX_BRIGHTNESS = 235
OUTLINE = s.Style(stroke_style="#00A000", size=2)


def tissue_mask(rgba: Any) -> Any:
    """A boolean tissue mask from an RGBA region (transparent pixels are never tissue)."""
    import numpy as np

    rgb = rgba[..., :3].astype(np.int16)
    saturation = rgb.max(axis=2) - rgb.min(axis=2)
    brightness = rgb.mean(axis=2)
    return (saturation >= MIN_SATURATION) & (brightness <= MAX_BRIGHTNESS) & (rgba[..., 3] > 0)


@app.on_create
async def create(ctx: AsyncInvocationContext) -> s.Result:
    """Outline the tissue of the whole slide (any input: the slide is read whole at ANALYSIS_MPP)."""
    slide = await ctx.client.open_slide(ctx.slide_id)
    async with slide:
        base_mpp = float(slide.properties["openslide.mpp-x"])
        downsample = ANALYSIS_MPP / base_mpp  # level-0 pixels per analysis pixel
        width, height = slide.dimensions
        size = (max(1, round(width / downsample)), max(1, round(height / downsample)))
        region = await slide.read_region_mpp((0, 0), ANALYSIS_MPP, size, as_array=True)
    mask = tissue_mask(region)
    fraction = float(mask.mean())
    builder = mask_result(
        mask, slide.pyramid, downsample, styles={1: OUTLINE}, max_points=300, min_area=4, holes=True,
    )
    text = f"Tissue {fraction * 100:.1f} %"
    return builder.label((0.01, 0.01), text).build(
        ctx.slide_id, text, display_properties={"Tissue %": round(fraction * 100, 2), "Regions": len(builder) - 1},
        application_version=app.app_version,
    )


def main() -> None:
    """Serve the app and the mock, run it on the demo slides, print what it stored."""
    from sectra_client.app import AppServer, create_app
    from sectra_client.mock_server import MockSectraServer

    mock = MockSectraServer()
    with mock.run(), AppServer(create_app(app, url_prefix="/tissue", trusted_callbacks=[mock.url])).run() as base:
        for slide_id in ("slide-001", "slide-002", "slide-003"):
            stored = mock.trigger(f"{base}/tissue", application_id=app.application_id, slide_id=slide_id)
            print(slide_id, stored.display_result, stored.display_properties)


if __name__ == "__main__":
    main()
