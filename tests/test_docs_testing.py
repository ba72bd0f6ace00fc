"""The example from docs/testing.md, as a real test. A check below keeps the two identical."""

from __future__ import annotations

from pathlib import Path

# --- begin docs example ---
from examples.apps.tissue_box import handle_create
from sectra_mock import MockSectraServer


async def test_tissue_box_stores_one_result(sectra_mock: MockSectraServer) -> None:
    sectra_mock.add_slide(sectra_mock.image_info("slide-001"))  # or your own ImageInfo
    invocation = sectra_mock.build_create("my-app", "slide-001")  # callbackInfo points at the mock

    answer = await handle_create(invocation)

    stored = sectra_mock.get_results(app_id="my-app", slide_id="slide-001")
    assert [r.id for r in stored] == [answer.id]
    info = sectra_mock.image_info("slide-001")
    points = stored[0].data.result.content[0].polygons[0].points
    assert max(p.y for p in points) <= info.image_size.height / info.image_size.width
# --- end docs example ---


def test_docs_show_this_exact_example() -> None:
    source = Path(__file__).read_text()
    example = source.split("# --- begin docs example ---\n")[1].split("# --- end docs example ---")[0]
    docs = (Path(__file__).resolve().parents[1] / "docs" / "testing.md").read_text()
    assert example.strip() in docs
