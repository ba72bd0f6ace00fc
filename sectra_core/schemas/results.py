"""Analysis results: primitives, patch collections, attachments (spec §4.11-4.15, §5.6).

Decoding is tolerant of what Sectra itself sends (spec §9.2): primitive ``content`` as one object or
a list (always a list after decoding), ``null`` for any optional field or one with a default
(read as the default: what Sectra's pydantic clients send, spec §11.1), a missing
``applicationVersion``, a result ``id`` given as int or string. Encoding is canonical: lists,
camelCase, no nulls for absent values.
"""

from __future__ import annotations

from typing import Any, Final, Union

import msgspec

from ._base import Nullable, WireStruct, fill_nulls
from .common import Point, Polygon

__all__ = [
    "Style",
    "Polyline",
    "Arc",
    "Label",
    "PrimitiveItem",
    "PrimitiveResult",
    "PatchStatus",
    "PatchAction",
    "Patch",
    "PatchContent",
    "PatchCollectionResult",
    "ResultContent",
    "ResultData",
    "Attachment",
    "AttachmentState",
    "Result",
    "ResultResponse",
    "ResultUpdate",
]


class Style(WireStruct):
    """Drawing style for every object of a :class:`PrimitiveItem`: CSS colours and a stroke size."""

    stroke_style: str | None = None
    fill_style: str | None = None
    size: int | None = None


class Polyline(WireStruct, gc=False):
    """An open line through at least 2 points."""

    points: list[Point]


class Arc(WireStruct, omit_defaults=False):
    """A circle arc: centre, radius (width-normalised) and start/end angles in radians."""

    center: Point
    radius: float
    start_angle: Nullable[float] = 0.0
    end_angle: Nullable[float] = 6.283185307179586

    def __post_init__(self) -> None:
        fill_nulls(self)


class Label(WireStruct, gc=False):
    """A text label; ``location`` is its upper-left corner."""

    location: Point
    label: str


class PrimitiveItem(WireStruct):
    """A group of drawn objects sharing one style."""

    style: Style | None = None
    polygons: Nullable[list[Polygon]] = []
    polylines: Nullable[list[Polyline]] = []
    arcs: Nullable[list[Arc]] = []
    labels: Nullable[list[Label]] = []

    def __post_init__(self) -> None:
        fill_nulls(self)


class PrimitiveResult(WireStruct, omit_defaults=False, tag_field="type", tag="primitive"):
    """Result content of ``type: primitive``: polygons, polylines, arcs and labels."""

    content: Nullable[list[PrimitiveItem] | PrimitiveItem] = []

    def __post_init__(self) -> None:
        # Sectra's own example apps send a single object here; every typed model sends a list
        # (spec §5.6 [C]). Accept both, keep one shape in memory and on output (the mock echoes
        # the shape a client sent, see sectra_mock.shapes).
        if isinstance(self.content, PrimitiveItem):
            self.content = [self.content]
        elif self.content is None:
            self.content = []


class PatchStatus(WireStruct, omit_defaults=False):
    """A status flag of a patch gallery, e.g. ``allowVerify``."""

    value: Nullable[bool] = True
    message: Nullable[str] = ""

    def __post_init__(self) -> None:
        fill_nulls(self)


class PatchAction(WireStruct, omit_defaults=False):
    """A button in the patch gallery; ``state == 1`` in a ``modify`` invocation means it was pressed."""

    id: str
    state: Nullable[int] = 0
    name: Nullable[str] = ""
    tooltip: Nullable[str] = ""

    def __post_init__(self) -> None:
        fill_nulls(self)


class Patch(WireStruct, omit_defaults=False, gc=False):
    """One gallery patch: index into ``tags``, centre position, and a sort key."""

    tag: int
    position: Point
    sort_key_value: float = 0.0


def _allow_verify() -> dict[str, PatchStatus]:
    return {"allowVerify": PatchStatus(value=True)}


class PatchContent(WireStruct, omit_defaults=False):
    """The content of a patch-collection result (spec §5.6).

    ``statuses`` defaults to ``allowVerify: true`` (contrib/community default); ``actions`` is
    optional on input (``null`` or missing) and always a list after decoding.
    """

    description: Nullable[str] = ""
    polygons: Nullable[list[Polygon]] = []
    patches: Nullable[list[Patch]] = []
    tags: Nullable[list[str]] = []
    patch_size: Nullable[int] = 64
    magnification: Nullable[float] = 10.0
    statuses: Nullable[dict[str, PatchStatus]] = msgspec.field(default_factory=_allow_verify)
    actions: list[PatchAction] | None = []

    def __post_init__(self) -> None:
        fill_nulls(self)


class PatchCollectionResult(WireStruct, omit_defaults=False, tag_field="type", tag="patchCollection"):
    """Result content of ``type: patchCollection``: a gallery of patches."""

    content: Nullable[PatchContent] = msgspec.field(default_factory=PatchContent)

    def __post_init__(self) -> None:
        fill_nulls(self)


ResultContent = Union[PrimitiveResult, PatchCollectionResult]


class ResultData(WireStruct):
    """The ``data`` of a result: app-private ``context`` and the drawable ``result``.

    ``{}`` decodes too (both fields are optional), as contrib and the downloader accept.
    """

    context: Any = None
    result: ResultContent | None = None


class AttachmentState:
    """Attachment states (spec §5.6)."""

    NEW: Final = "new"
    UPLOAD_IN_PROGRESS: Final = "upload-in-progress"
    STORED: Final = "stored"


class Attachment(WireStruct, omit_defaults=False):
    """A file attached to a result."""

    name: str
    state: Nullable[str] = AttachmentState.NEW

    def __post_init__(self) -> None:
        fill_nulls(self)


class Result(WireStruct):
    """A result as an app stores it (``POST .../results``)."""

    slide_id: str
    display_result: str | None = None
    display_properties: Nullable[dict[str, str | int | float]] = {}
    application_version: str | None = None
    attachments: list[Attachment] | None = None
    data: Nullable[ResultData] = msgspec.field(default_factory=ResultData)

    def __post_init__(self) -> None:
        fill_nulls(self)

    def content_fields(self) -> dict[str, Any]:
        """The :class:`Result` fields by name, without a subclass's ``id``/``versionId``."""
        return {f: getattr(self, f) for f in Result.__struct_fields__}

    def as_result(self) -> Result:
        """The same content as a plain :class:`Result`, e.g. to store it on another slide."""
        return Result(**self.content_fields())


class ResultResponse(Result, kw_only=True):
    """A stored result: a :class:`Result` plus the server's ``id`` and ``versionId``.

    ``id`` is kept as the server sent it (int, or string on some servers; spec §9.2).
    """

    id: int | str
    version_id: str



class ResultUpdate(Result, kw_only=True):
    """A ``PUT .../results/{id}`` body as servers must accept it: ``id``/``versionId`` optional.

    Sectra's examples send the whole stored result; contrib and the downloader send a plain
    :class:`Result` without ``versionId`` (spec §4.13 [C]). The SDK itself always sends both.
    """

    id: int | str | None = None
    version_id: str | None = None
