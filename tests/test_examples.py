"""Every example app, served for real and driven by the mock the way Sectra drives it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
import trio

from examples.apps import long_running, patch_gallery, triage
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
