"""A patch-gallery app: sample patches over the drawn area, sort them into classes, let the
pathologist re-sort them, and recount when the "Recount" button is pressed.

Registration: ``taggedPolygon`` input (the user draws the area and picks a tag). The answer to
``create`` is a stored patch collection; a ``modify`` with the button pressed recomputes the
counts from the pathologist's sorting and stores the result again (same id).

Run the demo: ``python examples/apps/patch_gallery.py``
"""

from __future__ import annotations

import hashlib

from sectra_client.app import AnalysisApp, AsyncInvocationContext, PatchGalleryBuilder
from sectra_core import schemas as s

CLASSES = ["Tumour", "Stroma", "Other"]

app = AnalysisApp(
    application_id="patch-gallery", display_name="Cell classes (gallery)", manufacturer="Example Lab",
    input_type="taggedPolygon", tags=["Region of interest"], app_version="1.0.0",
)


def classify(slide_id: str, point: s.Point) -> tuple[int, float]:
    """Stand-in for a model: a class and a confidence for the patch at ``point``."""
    digest = hashlib.sha256(f"{slide_id}:{point.x:.5f}:{point.y:.5f}".encode()).digest()
    return digest[0] % len(CLASSES), digest[1] / 255


def counts_text(patches: list[s.Patch]) -> tuple[str, dict[str, str | int | float]]:
    """The display text and the popup table for the current sorting."""
    counts = [sum(1 for p in patches if p.tag == i) for i in range(len(CLASSES))]
    total = max(1, len(patches))
    text = f"{CLASSES[0]}: {100 * counts[0] / total:.0f} % of {len(patches)} patches"
    return text, {name: n for name, n in zip(CLASSES, counts)}


def gallery(slide_id: str, region: s.Polygon, patches: list[s.Patch]) -> PatchGalleryBuilder:
    """The gallery for ``region``: patches, a Recount button."""
    g = PatchGalleryBuilder(CLASSES, patch_size=128, magnification=20, description="Drag patches to the right class")
    g.region(region.points).action("recount", "Recount", "Count again after re-sorting")
    for p in patches:
        g.patch(p.tag, p.position, p.sort_key_value)
    return g


@app.on_create
async def create(ctx: AsyncInvocationContext) -> s.Result:
    """Sample a 6x6 grid of patches inside the drawn polygon's bounding box."""
    inp = ctx.invocation.input
    if not isinstance(inp, s.TaggedPolygonInput):
        raise ValueError("this app needs a drawn polygon")
    region = inp.content.polygon
    xs, ys = [p.x for p in region.points], [p.y for p in region.points]
    patches = []
    for i in range(6):
        for j in range(6):
            pos = s.Point(x=min(xs) + (i + 0.5) * (max(xs) - min(xs)) / 6, y=min(ys) + (j + 0.5) * (max(ys) - min(ys)) / 6)
            tag, confidence = classify(ctx.slide_id, pos)
            patches.append(s.Patch(tag=tag, position=pos, sort_key_value=confidence))
    text, table = counts_text(patches)
    return gallery(ctx.slide_id, region, patches).build(
        ctx.slide_id, text, display_properties=table, context={"tag": inp.content.tag},
    )


@app.on_modify
async def modify(ctx: AsyncInvocationContext) -> s.Result | s.ResultResponse:
    """Recount when the button was pressed; otherwise keep the pathologist's edit as it is."""
    current = ctx.invocation.input
    content = current.data.result
    if not isinstance(content, s.PatchCollectionResult):
        return current
    pressed = any(a.id == "recount" and a.state == 1 for a in content.content.actions or [])
    if not pressed:
        return current  # echo: Sectra already holds the edit
    text, table = counts_text(content.content.patches)
    # A fresh gallery has the button released (state 0) again.
    return gallery(ctx.slide_id, content.content.polygons[0], content.content.patches).build(
        ctx.slide_id, text, display_properties=table, context=current.data.context,
    )


def main() -> None:
    """Serve the app and the mock, draw a polygon, press Recount, print what Sectra holds."""
    import msgspec

    from sectra_client.app import AppServer, create_app
    from sectra_client.mock_server import MockSectraServer

    mock = MockSectraServer()
    # The app calls back only origins it trusts (docs/app-guide.md): here, the mock just started.
    with mock.run(), AppServer(create_app(app, url_prefix="/gallery", trusted_callbacks=[mock.url])).run() as base:
        url = f"{base}/gallery"
        square = s.Polygon(points=[s.Point(x=0.2, y=0.2), s.Point(x=0.3, y=0.2), s.Point(x=0.3, y=0.3), s.Point(x=0.2, y=0.3)])
        drawn = s.TaggedPolygonInput(content=s.TaggedPolygonContent(polygon=square, tags=["Region of interest"], tag_index=0))
        stored = mock.trigger(url, application_id=app.application_id, slide_id="slide-001", input=drawn)
        print(f"create → result {stored.id}: {stored.display_result}")
        # The pathologist drags every patch into "Tumour", then presses Recount.
        patches = stored.data.result.content
        resorted = msgspec.structs.replace(patches, patches=[msgspec.structs.replace(p, tag=0) for p in patches.patches])
        edited = msgspec.structs.replace(stored, data=msgspec.structs.replace(
            stored.data, result=s.PatchCollectionResult(content=resorted)))
        recounted = mock.modify(url, edited, application_id=app.application_id, press="recount")
        print(f"Recount → result {recounted.id}: {recounted.display_result} {recounted.display_properties}")


if __name__ == "__main__":
    main()
