"""Slide metadata: image info, case image lists, quality control and the label image (spec §4.4-4.8, §5.4-5.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._base import Nullable, WireStruct, fill_nulls
from .common import DisplayName, Size

__all__ = [
    "FocalPlane",
    "OpticalPath",
    "TileFormat",
    "FileFormat",
    "Specimen",
    "QualityControlData",
    "QualityControl",
    "QualityStatus",
    "ImageInfo",
    "ImageMetadata",
    "CaseImageInfo",
    "LabelImage",
    "PHI_FIELDS",
    "EXTENDED_FIELDS",
]


class QualityStatus:
    """The quality-control states Sectra knows (spec §5.7)."""

    NOT_SET: Final = "NotSet"
    QUALITY_OK: Final = "QualityOk"
    REJECTED: Final = "Rejected"


class FocalPlane(WireStruct, omit_defaults=False):
    """A focal plane; its ``id`` goes into tile URLs (spec §4.7)."""

    id: str
    offset_um: float = 0.0


class OpticalPath(WireStruct, omit_defaults=False):
    """An optical path (e.g. a fluorescence channel); its ``id`` selects it in tile requests."""

    id: str
    description: str = ""


class TileFormat(WireStruct, omit_defaults=False):
    """A tile encoding: MIME type and the URL extension to request it with."""

    mime_type: str
    extension: str = ""


class FileFormat(WireStruct, omit_defaults=False):
    """The container format of the original slide files, e.g. ``application/dicom``."""

    mime_type: str


class Specimen(WireStruct):
    """Specimen data from the LIS."""

    anatomy: str | None = None
    description: str | None = None


class QualityControlData(WireStruct, omit_defaults=False):
    """A slide's quality-control state and the ``versionId`` an update must repeat (spec §4.16)."""

    status: str = QualityStatus.NOT_SET
    version_id: str = ""


class QualityControl(WireStruct):
    """Body of ``PUT /slides/{id}/qualityControl`` (IA-API 1.10 and newer)."""

    application_version: str
    quality_control: QualityControlData


#: Fields that identify a patient or an exam; the mock leaves them out unless ``includePHI=true``.
PHI_FIELDS: Final = frozenset(
    {
        "accession_number_issuer",
        "accession_number",
        "study_instance_uid",
        "exam_id",
        "exam_date_time",
        "exam_free_fields",
        "lis_slide_id",
    }
)

#: Fields only sent with ``scope=extended`` (spec §5.4 marks this split as inferred).
#: ``qualityControl`` is in both scopes: Sectra's contrib README reads it from the basic scope.
EXTENDED_FIELDS: Final = frozenset(
    {
        "body_part",
        "exam_code",
        "exam_description",
        "station_name",
        "priority",
        "series_instance_uid",
    }
)


class ImageInfo(WireStruct):
    """``GET /slides/{id}/info``: one slide's metadata (spec §5.4).

    Only ``id``, ``isStreamable``, ``imageSize`` and ``tileSize`` are required; everything else is
    optional because servers differ in what they send (``stationName`` went missing in the wild).
    PHI fields never appear in a repr.
    """

    __redact__ = PHI_FIELDS | {"series_instance_uid"}

    id: str
    is_streamable: bool
    image_size: Size
    tile_size: Size
    microns_per_pixel: float | None = None
    focal_planes: Nullable[list[FocalPlane]] = []
    optical_paths: Nullable[list[OpticalPath]] = []
    stored_tile_format: TileFormat | None = None
    available_tile_formats: Nullable[list[TileFormat]] = []
    file_format: FileFormat | None = None
    staining: DisplayName | None = None
    block: DisplayName | None = None
    specimen: Specimen | None = None
    body_part: str | None = None
    exam_code: str | None = None
    exam_description: str | None = None
    station_name: str | None = None
    priority: int | None = None
    quality_control: QualityControlData | None = None
    series_instance_uid: str | None = None
    lis_slide_id: str | None = None
    accession_number_issuer: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    exam_id: str | None = None
    exam_date_time: str | None = None
    exam_free_fields: list[dict[str, str]] | None = None

    def __post_init__(self) -> None:
        fill_nulls(self)

    @property
    def max_y(self) -> float:
        """The largest y in width-normalised coordinates: height / width (spec §2.4)."""
        return self.image_size.height / self.image_size.width


#: The community package's name for :class:`ImageInfo`.
ImageMetadata = ImageInfo


class CaseImageInfo(WireStruct):
    """One slide of a case, from ``/requests/{accession}/images/info`` (spec §5.5)."""

    __redact__ = frozenset({"series_instance_uid", "lis_slide_id"})

    id: str
    staining: DisplayName | None = None
    block: DisplayName | None = None
    specimen: Specimen | None = None
    series_instance_uid: str | None = None
    lis_slide_id: str | None = None


@dataclass(frozen=True, slots=True)
class LabelImage:
    """The slide's label image (may contain PHI: it is never shown in a repr)."""

    data: bytes
    content_type: str

    def __repr__(self) -> str:
        return f"LabelImage(content_type={self.content_type!r}, size={len(self.data)})"
