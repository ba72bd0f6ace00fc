"""The mock's in-memory world: slides, their files, results, quality control, applications.

Thread-safe: in ``run()`` mode the server runs in its own thread while the test calls
``add_slide`` or ``get_results`` from another. Every method takes the lock briefly and never
awaits while holding it.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from sectra_core import schemas as s

from .payloads import DiskFile, FileSource, SyntheticFile, png

if TYPE_CHECKING:
    from .slides import SlideImage

__all__ = ["MockSlide", "MockState", "plausible_image_info", "new_version_id", "Conflict", "Missing", "Full"]

#: Default cap on the results one application keeps on one slide (see :class:`MockState`).
MAX_RESULTS_PER_SLIDE = 10_000
#: Default cap on the JSON bytes of every stored result together (see :class:`MockState`).
MAX_STORED_RESULT_BYTES = 512 * 1024 * 1024
#: How many drawn ``create`` inputs the mock remembers per slide (for the viewer).
MAX_INPUTS_PER_SLIDE = 20


class Missing(LookupError):
    """No such slide / result / application (answered 404)."""


class Conflict(Exception):
    """A stale ``versionId`` (answered 409)."""


class Full(Exception):
    """The mock's result store is at one of its caps (answered 507 Insufficient Storage)."""


def new_version_id() -> str:
    """A fresh opaque ``versionId``."""
    return uuid.uuid4().hex


@dataclass
class MockSlide:
    """One slide the mock knows: full metadata (with PHI), files, its label (None → 204), and the
    OpenSlide image its tiles are cut from (None: tiles of one colour, the metadata is invented)."""

    info: s.ImageInfo
    files: list[FileSource] = field(default_factory=list)
    label: bytes | None = None
    image: SlideImage | None = None


def plausible_image_info(slide_id: str, accession_number: str | None = None) -> s.ImageInfo:
    """Realistic metadata for ``slide_id``, the same every time for the same id (spec §5.4 example)."""
    h = int.from_bytes(hashlib.sha256(slide_id.encode()).digest()[:8], "big")
    width = 60000 + h % 50000
    height = 40000 + (h >> 16) % 40000
    acc = accession_number or f"A2025{h % 10**9:09d}"
    return s.ImageInfo(
        id=slide_id,
        is_streamable=True,
        image_size=s.Size(width=width, height=height),
        tile_size=s.Size(width=240, height=240),
        microns_per_pixel=0.25,
        focal_planes=[s.FocalPlane(id="0", offset_um=0.0)],
        optical_paths=[s.OpticalPath(id="0", description="Brightfield")],
        stored_tile_format=s.TileFormat(mime_type="image/jpeg", extension="jpg"),
        available_tile_formats=[
            s.TileFormat(mime_type="image/jpeg", extension="jpg"),
            s.TileFormat(mime_type="image/png", extension="png"),
        ],
        file_format=s.FileFormat(mime_type="application/dicom"),
        staining=s.DisplayName(display_name="HE"),
        block=s.DisplayName(display_name="A"),
        specimen=s.Specimen(anatomy="Breast", description="Core biopsy"),
        body_part="BREAST",
        exam_code="PAT01",
        exam_description="Histology",
        station_name="SCANNER1",
        priority=2,
        quality_control=s.QualityControlData(status=s.QualityStatus.NOT_SET, version_id=new_version_id()),
        series_instance_uid=f"1.2.752.24.7.{h % 10**6}.2",
        lis_slide_id=f"T25-{h % 100000:05d} A 1 HE",
        accession_number_issuer="LAB1",
        accession_number=acc,
        study_instance_uid=f"1.2.752.24.7.{h % 10**6}",
        exam_id=f"E{h % 10**6}",
        exam_date_time="2025-08-13T07:45:42",
        exam_free_fields=[{"name": "Referral", "value": "Ward 5"}],
    )


class MockState:
    """Slides, results, quality control and applications, behind one lock.

    Unknown slide ids are :class:`Missing` (404, as on a real server) unless ``invent_slides``,
    which invents plausible metadata on first use. ``strict``: unknown applications are 404 too.
    ``max_results_per_slide``: how many results one application may keep on one slide;
    ``max_stored_result_bytes``: the JSON size of all stored results together. Results live in
    memory, so without these an app storing in a loop (or anyone holding a token) grows the mock
    without bound; past either cap a store is a :class:`Full`.
    """

    def __init__(
        self, *, strict: bool = False, invent_slides: bool = False,
        max_results_per_slide: int = MAX_RESULTS_PER_SLIDE, max_stored_result_bytes: int = MAX_STORED_RESULT_BYTES,
    ) -> None:
        self.strict = strict
        self.invent_slides = invent_slides
        self.max_results_per_slide = max_results_per_slide
        self.max_stored_result_bytes = max_stored_result_bytes
        self._stored_bytes = 0
        #: JSON size of each stored result, by (app, result id), to keep ``_stored_bytes`` exact.
        self._sizes: dict[tuple[str, str], int] = {}
        #: How many results each (app, slide) holds, so the cap check needs no scan.
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()
        self._slides: dict[str, MockSlide] = {}
        self._results: dict[str, dict[str, s.ResultResponse]] = {}
        self._next_id: dict[str, int] = {}
        self._apps: dict[str, s.Application] = {}
        self._attachments: dict[tuple[str, str, str], bytes] = {}
        #: slide id → the drawn inputs of the latest ``create`` invocations sent for it (app id, input).
        self._inputs: dict[str, list[tuple[int, str, s.CreateInput]]] = {}
        self._input_serial = 0
        #: app id → ids of results whose primitive ``content`` was sent as one object (echoed so).
        self._single: dict[str, set[str]] = {}

    # --- slides ----------------------------------------------------------------------------------

    def add_slide(
        self, info: s.ImageInfo, *, label: bytes | None = b"", image: SlideImage | None = None,
        files: list[FileSource] | None = None,
    ) -> MockSlide:
        """Add or replace a slide. ``label=b""`` generates one; ``None`` means "no label" (204).
        ``image``: the OpenSlide image tiles are cut from; ``files``: replace the served files
        (default: keep a replaced slide's files)."""
        with self._lock:
            if label == b"":
                label = png(160, 80, (250, 250, 250))
            old = self._slides.get(info.id)
            if image is None and old is not None and old.image is not None:
                # New metadata for a slide with pixels: keep the pixels unless the size changed.
                if old.image.dimensions == (info.image_size.width, info.image_size.height):
                    image = old.image
            kept = old.files if old else []
            slide = MockSlide(info=info, files=list(files) if files is not None else kept, label=label, image=image)
            self._slides[info.id] = slide
            return slide

    def slide(self, slide_id: str) -> MockSlide:
        """The slide; :class:`Missing` (404) for an unknown id unless ``invent_slides``."""
        with self._lock:
            found = self._slides.get(slide_id)
            if found is None:
                if not self.invent_slides:
                    raise Missing(
                        f"no slide {slide_id!r} (add it with add_slide/add_slide_files, or "
                        "start the mock with invent_slides=True)"
                    )
                found = self.add_slide(plausible_image_info(slide_id))
            return found

    def has_slide(self, slide_id: str) -> bool:
        """Whether the slide is known (never invents one)."""
        with self._lock:
            return slide_id in self._slides

    def slides(self) -> list[MockSlide]:
        """Every known slide."""
        with self._lock:
            return list(self._slides.values())

    def add_files(self, slide_id: str, files: Iterable[FileSource], *, replace: bool = False) -> None:
        """Attach file sources to a slide (created if needed); ``replace``: instead of its files."""
        with self._lock:
            slide = self._slides.get(slide_id) or self.add_slide(plausible_image_info(slide_id))
            if replace:
                slide.files.clear()
            slide.files.extend(files)

    def files(self, slide_id: str) -> list[FileSource]:
        """The slide's files; a slide without registered files serves one small synthetic file."""
        slide = self.slide(slide_id)
        with self._lock:
            if not slide.files:
                return [SyntheticFile(name=f"{_safe(slide_id)}.svs", size=4096, seed=len(slide_id))]
            return list(slide.files)

    def set_quality_control(self, slide_id: str, update: s.QualityControl) -> None:
        """Apply a QC update; a ``versionId`` other than the current one is a :class:`Conflict`."""
        with self._lock:
            slide = self.slide(slide_id)
            current = slide.info.quality_control or s.QualityControlData()
            sent = update.quality_control.version_id
            if current.version_id and sent != current.version_id:
                raise Conflict("stale qualityControl versionId")
            slide.info = msgspec.structs.replace(
                slide.info,
                quality_control=s.QualityControlData(
                    status=update.quality_control.status, version_id=new_version_id()
                ),
            )

    # --- results ---------------------------------------------------------------------------------

    def _check_room(self, app_id: str, slide_id: str, size: int, freed: int, new_on_slide: bool) -> None:
        if new_on_slide and self._counts.get((app_id, slide_id), 0) >= self.max_results_per_slide:
            raise Full(
                f"application {app_id!r} already keeps {self.max_results_per_slide} results on slide "
                f"{slide_id!r}, the mock's max_results_per_slide; update an existing result instead "
                "(apps re-use one result per slide, spec §1.4), or raise the cap "
                "(MockSectraServer(max_results_per_slide=...), sectra mock serve --max-results-per-slide)"
            )
        if self._stored_bytes - freed + size > self.max_stored_result_bytes:
            raise Full(
                f"storing this {size}-byte result would take the mock's results past "
                f"max_stored_result_bytes={self.max_stored_result_bytes}; raise the cap "
                "(MockSectraServer(max_stored_result_bytes=...), sectra mock serve --max-stored-result-bytes)"
            )

    def create_result(self, app_id: str, result: s.Result) -> s.ResultResponse:
        """Store a new result with the app's next integer id and a fresh ``versionId``
        (:class:`Full` past ``max_results_per_slide`` or ``max_stored_result_bytes``)."""
        size = len(s.encode(result))
        with self._lock:
            self._check_room(app_id, result.slide_id, size, 0, True)
            rid = self._next_id.get(app_id, 0) + 1
            self._next_id[app_id] = rid
            stored = s.ResultResponse(id=rid, version_id=new_version_id(), **result.content_fields())
            self._results.setdefault(app_id, {})[str(rid)] = stored
            self._account(app_id, str(rid), stored.slide_id, size, +1)
            return stored

    def _account(self, app_id: str, result_id: str, slide_id: str, size: int, count: int) -> None:
        # count=+1: this result now exists with this size; count=-1: it no longer does.
        key = (app_id, slide_id)
        self._counts[key] = self._counts.get(key, 0) + count
        if count > 0:
            self._sizes[(app_id, result_id)] = size
            self._stored_bytes += size
        else:
            self._stored_bytes -= self._sizes.pop((app_id, result_id), 0)

    def get_result(self, app_id: str, result_id: str) -> s.ResultResponse:
        """A stored result, or :class:`Missing`."""
        with self._lock:
            try:
                return self._results[app_id][result_id]
            except KeyError:
                raise Missing(f"no result {result_id!r} for application {app_id!r}") from None

    def update_result(self, app_id: str, result_id: str, update: s.ResultUpdate) -> s.ResultResponse:
        """Replace a result. A ``versionId`` that is sent must be current (else :class:`Conflict`);
        one that is left out is accepted, as contrib and the downloader send none (spec §4.13 [C])."""
        size = len(s.encode(update))
        with self._lock:
            old = self.get_result(app_id, result_id)
            if update.version_id is not None and update.version_id != old.version_id:
                raise Conflict("stale result versionId")
            freed = self._sizes.get((app_id, result_id), 0)
            self._check_room(app_id, update.slide_id, size, freed, update.slide_id != old.slide_id)
            stored = s.ResultResponse(id=old.id, version_id=new_version_id(), **update.content_fields())
            self._results[app_id][result_id] = stored
            self._account(app_id, result_id, old.slide_id, 0, -1)
            self._account(app_id, result_id, stored.slide_id, size, +1)
            return stored

    def results_for_slide(self, app_id: str, slide_id: str) -> list[s.ResultResponse]:
        """The app's results on a slide, oldest first."""
        with self._lock:
            return [r for r in self._results.get(app_id, {}).values() if r.slide_id == slide_id]

    def results_on_slide(self, slide_id: str) -> dict[str, list[s.ResultResponse]]:
        """Every application's results on a slide, by application id, oldest first (the viewer)."""
        with self._lock:
            found: dict[str, list[s.ResultResponse]] = {}
            for app_id, results in self._results.items():
                mine = [r for r in results.values() if r.slide_id == slide_id]
                if mine:
                    found[app_id] = mine
            return found

    def record_input(self, app_id: str, slide_id: str, drawn: s.CreateInput) -> None:
        """Remember a ``create`` invocation's drawn input (tagged polygon, areas) for the viewer;
        the latest :data:`MAX_INPUTS_PER_SLIDE` per slide. Whole-slide inputs draw nothing."""
        if isinstance(drawn, s.WholeSlideInput):
            return
        with self._lock:
            self._input_serial += 1
            kept = self._inputs.setdefault(slide_id, [])
            kept.append((self._input_serial, app_id, drawn))
            del kept[:-MAX_INPUTS_PER_SLIDE]

    def inputs_on_slide(self, slide_id: str) -> list[tuple[int, str, s.CreateInput]]:
        """The drawn inputs sent for a slide (serial number, app id, input), oldest first."""
        with self._lock:
            return list(self._inputs.get(slide_id, ()))

    def result_counts(self) -> dict[str, dict[str, int]]:
        """How many results each application keeps, by slide id then application id."""
        with self._lock:
            counts: dict[str, dict[str, int]] = {}
            for (app_id, slide_id), count in self._counts.items():
                if count > 0:
                    counts.setdefault(slide_id, {})[app_id] = count
            return counts

    def set_single_content(self, app_id: str, stored: s.ResultResponse, single: bool) -> None:
        """Remember whether ``stored``'s primitive content was sent as one object (spec §5.6)."""
        with self._lock:
            ids = self._single.setdefault(app_id, set())
            if single:
                ids.add(str(stored.id))
            else:
                ids.discard(str(stored.id))

    def single_content_ids(self, app_id: str) -> frozenset[str]:
        """Ids of the app's results to echo with a single-object primitive ``content``."""
        with self._lock:
            return frozenset(self._single.get(app_id, ()))

    def add_attachment(self, app_id: str, result_id: str, name: str, data: bytes) -> None:
        """Store attachment bytes for a result."""
        with self._lock:
            self._attachments[(app_id, result_id, name)] = data

    def attachment(self, app_id: str, result_id: str, name: str) -> bytes:
        """Attachment bytes, or :class:`Missing`."""
        with self._lock:
            try:
                return self._attachments[(app_id, result_id, name)]
            except KeyError:
                raise Missing(f"no attachment {name!r}") from None

    # --- applications ----------------------------------------------------------------------------

    def add_application(self, app: s.Application) -> None:
        """Register an application record."""
        with self._lock:
            self._apps[app.application_id] = app

    def application(self, app_id: str) -> s.Application:
        """The application; invented on first use unless strict."""
        with self._lock:
            if app_id not in self._apps:
                if self.strict:
                    raise Missing(f"no application {app_id!r}")
                self._apps[app_id] = s.Application(
                    application_id=app_id, display_name=app_id, manufacturer="Mock", context={}
                )
            return self._apps[app_id]


def _safe(slide_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in slide_id) or "slide"


def disk_files(paths: Path | str | Iterable[Path | str]) -> list[FileSource]:
    """File sources for one path or several."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return [DiskFile(path=Path(p)) for p in paths]
