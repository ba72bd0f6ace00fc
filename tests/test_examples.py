"""Every example app, served for real and driven by the mock the way Sectra drives it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import trio

from examples.apps import long_running, patch_gallery, tissue_outline, triage
from sectra_client.app import TrioJobRunner
from sectra_core import schemas as s
from sectra_mock import MockSectraServer

Serve = Callable[..., Awaitable[str]]
ROOT = Path(__file__).resolve().parents[1]


def drawn(x: float, y: float, r: float) -> s.TaggedPolygonInput:
    square = s.Polygon(points=[s.Point(x=x - r, y=y - r), s.Point(x=x + r, y=y - r), s.Point(x=x + r, y=y + r), s.Point(x=x - r, y=y + r)])
    return s.TaggedPolygonInput(content=s.TaggedPolygonContent(polygon=square, tags=["Region of interest"], tag_index=0))


async def test_patch_gallery_create_and_recount(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = patch_gallery.app
    url = await serve_sectra_app(app)
    report = await sectra_mock.aio.check_app(url, slide_id="slide-001")  # fires a taggedPolygon create
    assert report.ok, report.problems
    stored = await sectra_mock.aio.trigger(url, application_id=app.application_id, slide_id="slide-001", input=drawn(0.3, 0.2, 0.05))
    gallery = stored.data.result.content
    assert len(gallery.patches) == 36 and gallery.tags == patch_gallery.CLASSES
    assert all(0.25 <= p.position.x <= 0.35 for p in gallery.patches)
    # an edit without the button is kept as it is; with the button the counts follow the sorting
    moved = msgspec.structs.replace(gallery, patches=[msgspec.structs.replace(p, tag=2) for p in gallery.patches])
    edited = msgspec.structs.replace(stored, data=msgspec.structs.replace(stored.data, result=s.PatchCollectionResult(content=moved)))
    echoed = await sectra_mock.aio.modify(url, edited, application_id=app.application_id)
    assert echoed == edited
    recounted = await sectra_mock.aio.modify(url, edited, application_id=app.application_id, press="recount")
    assert recounted.id == stored.id and recounted.display_properties == {"Tumour": 0, "Stroma": 0, "Other": 36}
    assert recounted.data.result.content.actions[0].state == 0
    with pytest.raises(Exception, match="500"):  # whole-slide input is refused with Sectra's error shape
        await sectra_mock.aio.trigger(url, application_id=app.application_id, slide_id="slide-001")


async def test_long_running_progress_and_final(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    runner = TrioJobRunner()
    app = long_running.app
    old, app.job_runner = app.job_runner, runner
    try:
        sectra_mock.latency = 0.002
        url = await serve_sectra_app(app)
        answer = await sectra_mock.aio.trigger(url, application_id=app.application_id, slide_id="slide-001")
        assert answer.display_result == "Tissue map queued"
        with trio.fail_after(30):
            await runner.join()
        [done] = sectra_mock.get_results(app.application_id, "slide-001")
        assert done.id == answer.id and done.display_result.startswith("Tissue in ")
        info = sectra_mock.image_info("slide-001")
        ys = [p.y for item in done.data.result.content for poly in item.polygons for p in poly.points]
        assert ys and max(ys) <= info.max_y
    finally:
        app.job_runner = old


@pytest.mark.parametrize("sectra_mock_options", [{"invent_slides": True}], indirect=True)  # three new slides
async def test_triage_keeps_only_he_breast(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    app = triage.app
    url = await serve_sectra_app(app)
    for slide_id, staining, anatomy in [("keep", "H&E", "BREAST"), ("ki67", "Ki-67", "Breast"), ("colon", "HE", "Colon")]:
        sectra_mock.add_slide(msgspec.structs.replace(
            sectra_mock.image_info(slide_id), staining=s.DisplayName(display_name=staining), specimen=s.Specimen(anatomy=anatomy)))
        assert await sectra_mock.aio.notify(url, slide_id, app.application_id) == {}
    assert [r.display_result for r in sectra_mock.get_results(app.application_id, "keep")] == ["Queued for screening"]
    assert sectra_mock.get_results(app.application_id, "ki67") == sectra_mock.get_results(app.application_id, "colon") == []
    assert sectra_mock.image_info("keep").quality_control.status == s.QualityStatus.QUALITY_OK  # type: ignore[union-attr]
    assert sectra_mock.image_info("colon").quality_control.status == s.QualityStatus.NOT_SET  # type: ignore[union-attr]


@pytest.mark.parametrize("script", ["examples/apps/patch_gallery.py", "examples/apps/triage.py", "examples/apps/long_running.py"])
def test_demos_run(script: str) -> None:
    done = subprocess.run([sys.executable, str(ROOT / script)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stdout.lower()


async def test_tissue_outline_reads_pixels_and_posts_the_outline(sectra_mock: MockSectraServer, serve_sectra_app: Serve) -> None:
    """The whole-slide app reads the demo slide at 8 µm/px through open_slide and outlines the tissue:
    its tissue share matches the same threshold applied to OpenSlide's own pixels of the file."""
    import numpy as np
    import openslide

    from sectra_core.app.builders import validate_result
    from sectra_mock.demo_slides import ensure_demo_slides

    url = await serve_sectra_app(tissue_outline.app)
    stored = await sectra_mock.aio.trigger(url, application_id=tissue_outline.app.application_id, slide_id="slide-001")
    validate_result(stored, max_y=0.75)
    item, caption = stored.data.result.content  # outlines in their style, the caption label unstyled
    assert caption.labels[0].label == stored.display_result
    assert item.style == tissue_outline.OUTLINE and len(item.polygons) >= 1
    assert all(3 <= len(p.points) <= 300 for p in item.polygons)
    with openslide.OpenSlide(str(ensure_demo_slides()["slide-001"][0])) as local:
        thumb = local.read_region((0, 0), 0, local.dimensions).resize((75, 56))  # 2400/32: 8 µm/px
    expected = float(tissue_outline.tissue_mask(np.asarray(thumb)).mean()) * 100
    assert stored.display_properties["Tissue %"] == pytest.approx(expected, abs=3)
    assert 20 < expected < 80  # the demo slide is part tissue, part glass
