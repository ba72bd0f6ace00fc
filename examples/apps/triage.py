"""Image-notification triage: look at every newly imported slide, flag the ones worth a model run.

Sectra notifies the app about **all** imported slides (spec §3 W4), with the slide's ``imageInfo``
in the payload, so triage needs no API call. This app keeps only H&E breast slides, marks their
quality control as OK, and stores a small "queued for screening" result on them; everything else
is ignored (answering ``{}`` either way). The filter is data, so sites can change it.

Run the demo: ``python examples/apps/triage.py``
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from sectra_client.app import AnalysisApp, InvocationContext, PrimitiveBuilder
from sectra_core import schemas as s

app = AnalysisApp(
    application_id="breast-triage", display_name="Breast screening triage", manufacturer="Example Lab",
    app_version="0.4.0",
)


@dataclass(frozen=True)
class Rule:
    """Which slides are interesting: staining and anatomy, compared case-insensitively."""

    stainings: frozenset[str] = frozenset({"he", "h&e"})
    anatomies: frozenset[str] = frozenset({"breast"})

    def matches(self, info: s.ImageInfo) -> bool:
        """Whether ``info`` describes a slide worth screening."""
        staining = (info.staining.display_name if info.staining else "") or ""
        anatomy = (info.specimen.anatomy if info.specimen else "") or ""
        return staining.lower() in self.stainings and anatomy.lower() in self.anatomies


RULE = Rule()


@app.on_notification
def triage(ctx: InvocationContext) -> None:
    """Sync handler (runs in a worker thread, sync client): filter, then mark and store."""
    info = ctx.image_info()  # from the notification itself
    if not info.is_streamable or not RULE.matches(info):
        return None
    qc_version = info.quality_control.version_id if info.quality_control else ""
    ctx.client.set_quality_control(ctx.slide_id, s.QualityControl(
        application_version=app.app_version,
        quality_control=s.QualityControlData(status=s.QualityStatus.QUALITY_OK, version_id=qc_version),
    ))
    text = "Queued for screening"
    ctx.store(PrimitiveBuilder(ctx.pyramid()).label((0.01, 0.01), text).build(ctx.slide_id, text))
    return None


def main() -> None:
    """Import three slides into the mock, notify the app about each, print what it kept."""
    from sectra_client.app import AppServer, create_app
    from sectra_client.mock_server import MockSectraServer

    mock = MockSectraServer(invent_slides=True)  # invents the three slides' metadata on first use
    # The app calls back only origins it trusts (docs/app-guide.md): here, the mock just started.
    with mock.run(), AppServer(create_app(app, url_prefix="/triage", trusted_callbacks=[mock.url])).run() as base:
        for slide_id, staining, anatomy in [("s-he-breast", "HE", "Breast"), ("s-ki67", "Ki-67", "Breast"), ("s-he-colon", "HE", "Colon")]:
            mock.add_slide(msgspec.structs.replace(
                mock.image_info(slide_id), staining=s.DisplayName(display_name=staining), specimen=s.Specimen(anatomy=anatomy),
            ))
            mock.notify(f"{base}/triage", slide_id, app.application_id)
            kept = mock.get_results(app.application_id, slide_id)
            print(f"{slide_id}: {'kept: ' + kept[0].display_result if kept else 'ignored'}")


if __name__ == "__main__":
    main()
